import re

import pytest

from phi4ui.core.chat import (
    MediaRef,
    PromptLimits,
    Sampling,
    Turn,
    choose_adapter,
    plan_request,
    render_openai_messages,
    render_phi4_prompt,
)
from phi4ui.core.chat_messages import turn_from_message, turns_from_history
from phi4ui.core.media import MediaLimits, prepare
from phi4ui.errors import BadInput, PromptTooLong
from tests.support.mediafiles import write_audio, write_image

SPECIAL = re.compile(r"<\|[^|<>]+\|>")
LIMITS = PromptLimits(max_images=2, max_audios=1, max_model_len=4096)


def count_words(text: str) -> int:
    """A stand-in tokenizer: a word is a token, and so is each special token, which (as in
    a real tokenizer) never merges with the text beside it."""
    return len(SPECIAL.sub(r" \g<0> ", text).split())


@pytest.fixture()
def image(tmp_path):
    return prepare(write_image(tmp_path, "cat.png", size=(448, 448)), MediaLimits(dynamic_hd=1))


@pytest.fixture()
def clip(tmp_path):
    return prepare(write_audio(tmp_path, "hello.wav", seconds=2.0), MediaLimits())


def test_placeholders_are_numbered_across_the_whole_prompt(image, clip):
    turns = [Turn("user", (image, "What is this?")), Turn("assistant", ("A cat.",)),
             Turn("user", (clip, "And this?")), Turn("assistant", ("A tone.",)),
             Turn("user", (image, "Again?"))]
    prompt = render_phi4_prompt("Be brief.", turns)
    assert prompt == (
        "<|system|>Be brief.<|end|>"
        "<|user|><|image_1|>What is this?<|end|><|assistant|>A cat.<|end|>"
        "<|user|><|audio_1|>And this?<|end|><|assistant|>A tone.<|end|>"
        "<|user|><|image_2|>Again?<|end|><|assistant|>"
    )


def test_empty_system_prompt_is_left_out():
    assert render_phi4_prompt("", [Turn("user", ("hi",))]) == "<|user|>hi<|end|><|assistant|>"


def test_adapter_rule(image, clip):
    assert choose_adapter([Turn("user", ("hi",))]) is None
    assert choose_adapter([Turn("user", (clip, "hi"))]) == "speech"
    assert choose_adapter([Turn("user", (image, "hi"))]) == "vision"
    assert choose_adapter([Turn("user", (image, clip, "hi"))]) == "vision"
    assert choose_adapter([Turn("user", (image,)), Turn("assistant", ("x",)),
                           Turn("user", (clip,))]) == "vision"


def test_tokens_are_text_plus_media(image, clip):
    request = plan_request("sys", [Turn("user", (image, clip, "two words"))], Sampling(),
                           LIMITS, count_words)
    assert request.tokens.image == image.tokens
    assert request.tokens.audio == clip.tokens == 25
    assert request.tokens.text == count_words(
        render_phi4_prompt("sys", request.turns, with_placeholders=False))
    assert request.adapter == "vision"
    assert request.notes == ()


def test_oldest_media_over_the_per_prompt_limit_are_left_out_with_a_note(image, clip):
    turns = [Turn("user", (image, "one")), Turn("assistant", ("a",)),
             Turn("user", (image, "two")), Turn("assistant", ("b",)),
             Turn("user", (image, clip, "three")), Turn("assistant", ("c",)),
             Turn("user", (clip, "four"))]
    request = plan_request("", turns, Sampling(), LIMITS, count_words)
    assert len(request.images) == 2 and len(request.audios) == 1
    assert request.turns[0].parts == ("one",)
    assert request.turns[-1].parts[0] is clip
    assert any("cat.png" in note and "at most 2" in note for note in request.notes)
    assert any("hello.wav" in note and "at most 1" in note for note in request.notes)


def test_too_many_images_in_the_new_message_is_refused(image):
    with pytest.raises(BadInput, match="3 images attached"):
        plan_request("", [Turn("user", (image, image, image, "hi"))], Sampling(), LIMITS,
                     count_words)


def test_old_media_make_room_when_the_context_is_full(image):
    small = PromptLimits(max_images=2, max_audios=1, max_model_len=image.tokens + 200)
    turns = [Turn("user", (image, "one")), Turn("assistant", ("a",)), Turn("user", (image,))]
    request = plan_request("", turns, Sampling(max_tokens=512), small, count_words)
    assert len(request.images) == 1
    assert any("fit the context" in note for note in request.notes)
    assert request.sampling.max_tokens == small.max_model_len - request.tokens.total


def test_a_prompt_over_the_context_is_refused_with_the_numbers(image):
    tiny = PromptLimits(max_images=2, max_audios=1, max_model_len=image.tokens - 10)
    with pytest.raises(PromptTooLong) as caught:
        plan_request("", [Turn("user", (image, "what?"))], Sampling(), tiny, count_words)
    message = str(caught.value)
    assert f"images {image.tokens:,}" in message
    assert f"context holds {tiny.max_model_len:,}" in message


def test_gradio_history_in_both_shapes_becomes_turns():
    browser = [
        {"role": "user", "content": [{"type": "file", "file": {"path": "/tmp/a.png"}},
                                     {"type": "text", "text": "look"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {"role": "assistant", "content": "details", "metadata": {"title": "📊 stats"}},
    ]
    client = [
        {"role": "user", "content": [{"path": "/tmp/a.png"}, "look"]},
        {"role": "assistant", "content": "ok"},
    ]
    expected = [Turn("user", (MediaRef("/tmp/a.png"), "look")), Turn("assistant", ("ok",))]
    assert turns_from_history(browser) == expected
    assert turns_from_history(client) == expected


def test_consecutive_user_messages_merge():
    history = [{"role": "user", "content": [{"path": "/tmp/a.wav"}]},
               {"role": "user", "content": "transcribe"}]
    assert turns_from_history(history) == [Turn("user", (MediaRef("/tmp/a.wav"), "transcribe"))]


def test_new_message_from_the_multimodal_box():
    turn = turn_from_message({"text": " hi ", "files": ["/tmp/x.jpg", {"path": "/tmp/y.mp3"}]})
    assert turn.parts == (MediaRef("/tmp/x.jpg"), MediaRef("/tmp/y.mp3"), "hi")
    with pytest.raises(BadInput, match="empty"):
        turn_from_message({"text": "  ", "files": []})


def test_openai_messages(image, clip):
    turns = [Turn("user", (image, clip, "what?")), Turn("assistant", ("this",)),
             Turn("user", ("thanks",))]
    messages = render_openai_messages("sys", turns, lambda i: "data:image/png;base64,AA",
                                      lambda a: "UklGRg==")
    assert messages[0] == {"role": "system", "content": "sys"}
    assert [part["type"] for part in messages[1]["content"]] == ["image_url", "input_audio",
                                                                  "text"]
    assert messages[1]["content"][1]["input_audio"] == {"data": "UklGRg==", "format": "wav"}
    assert messages[2] == {"role": "assistant", "content": "this"}
    assert messages[3]["content"] == [{"type": "text", "text": "thanks"}]


def test_planning_a_long_conversation_counts_each_turn_once(clip):
    """300 messages that do not all fit: the planner counts each turn once and the whole
    prompt once, not the whole prompt again after each turn it leaves out."""
    calls = []

    def counting(text: str) -> int:
        calls.append(len(text))
        return count_words(text)

    turns = [Turn("user" if i % 2 == 0 else "assistant", (" ".join(["word"] * 40),))
             for i in range(300)] + [Turn("user", (clip, "and now?"))]
    limits = PromptLimits(max_images=2, max_audios=1, max_model_len=2048)
    request = plan_request("sys", turns, Sampling(max_tokens=64), limits, counting)
    assert request.tokens.total <= 2048 - 16
    assert len(request.turns) < len(turns) and "oldest messages left out" in request.notes[-1]
    assert request.tokens.text == count_words(
        render_phi4_prompt("sys", request.turns, with_placeholders=False))
    assert len(calls) <= len(turns) + 3
    assert sum(calls) < 3 * len(render_phi4_prompt("sys", turns))


def test_text_before_and_after_a_medium_is_counted_apart_without_a_newline(image):
    """The processor replaces a placeholder by special tokens before tokenizing, so
    "Look at this." and "What is it?" are tokenized apart with nothing between them."""
    def count_characters(text: str) -> int:  # every character a token, a newline too
        return len(SPECIAL.sub("", text)) + len(SPECIAL.findall(text))

    turn = Turn("user", ("Look at this.", image, "What is it?"))
    request = plan_request("", [turn], Sampling(), LIMITS, count_characters)
    assert "Look at this.<|image_1|>What is it?" in render_phi4_prompt("", request.turns)
    # the text's characters and <|user|>, <|end|>, <|assistant|>; no newline, no placeholder
    assert request.tokens.text == len("Look at this.") + len("What is it?") + 3
