"""The chat as the page shows it: what send, retry, undo, edit and stop do to it."""

from __future__ import annotations

import pytest

from phi4ui.core import history
from phi4ui.core.chat_messages import turns_from_history
from phi4ui.core.stats import RequestStats, StatsRecorder
from phi4ui.errors import BadInput


def stats(**overrides) -> RequestStats:
    values = dict(engine="embedded", adapter="vision", finish_reason="length", ttft_s=0.12,
                  e2e_s=0.9, completion_tokens=32, prompt_tokens=300, prompt_text_tokens=20,
                  prompt_image_tokens=280, prompt_audio_tokens=0, decode_tokens_per_s=40.0,
                  itl_p50_s=0.02, itl_p95_s=0.03)
    return RequestStats(**{**values, **overrides})


def answered(text: str, files: tuple[str, ...] = (), answer: str = "An answer.") -> list[dict]:
    return [*history.user_messages({"text": text, "files": list(files)}),
            {"role": "assistant", "content": answer},
            *history.answer_annotations(stats(), ["earlier image left out"])]


def test_user_messages_put_attachments_before_the_text() -> None:
    messages = history.user_messages({"text": "What is this?",
                                      "files": ["/tmp/a.png", {"path": "/tmp/b.wav"}]})
    assert messages == [
        {"role": "user", "content": [{"path": "/tmp/a.png"}, {"path": "/tmp/b.wav"}]},
        {"role": "user", "content": "What is this?"},
    ]
    assert history.user_messages({"text": "  ", "files": []}) == []


def test_annotations_are_titled_and_left_out_of_the_prompt() -> None:
    chat = answered("Describe it.", ("/tmp/a.png",))
    titles = [m["metadata"]["title"] for m in chat if history.is_annotation(m)]
    assert titles[0].startswith(history.STATS_PREFIX) and "first token 120 ms" in titles[0]
    assert titles[1] == history.NOTES_TITLE
    turns = turns_from_history(chat)
    assert [t.role for t in turns] == ["user", "assistant"]
    assert turns[1].text == "An answer."


def test_retry_removes_the_answer_and_its_annotations() -> None:
    chat = answered("First.") + answered("Second.", ("/tmp/a.png",))
    retried = history.for_retry(chat)
    assert retried == chat[:len(answered("First.")) + 2]
    assert retried[-1] == {"role": "user", "content": "Second."}


def test_retry_after_a_stop_before_any_answer() -> None:
    chat = history.with_stop_noted(history.user_messages({"text": "Hi", "files": []}))
    assert history.for_retry(chat) == [{"role": "user", "content": "Hi"}]


def test_undo_gives_the_message_back_with_its_files() -> None:
    first = answered("First.")
    chat = first + answered("Second.", ("/tmp/a.png", "/tmp/b.wav"))
    # Gradio hands the history back with its parts normalised.
    chat[len(first)]["content"] = [{"type": "file", "file": {"path": "/tmp/a.png"}},
                                   {"type": "file", "file": {"path": "/tmp/b.wav"}}]
    chat[len(first) + 1]["content"] = [{"type": "text", "text": "Second."}]
    kept, message = history.undo(chat)
    assert kept == first
    assert message == {"text": "Second.", "files": ["/tmp/a.png", "/tmp/b.wav"]}


def test_undo_and_retry_need_a_user_message() -> None:
    with pytest.raises(BadInput):
        history.undo([])
    with pytest.raises(BadInput):
        history.for_retry([{"role": "assistant", "content": "Welcome."}])


def test_edit_replaces_the_text_and_keeps_the_attachments() -> None:
    first = answered("First.")
    chat = first + answered("Describe it.", ("/tmp/a.png",))
    text_index = len(first) + 1
    edited = history.for_edit(chat, text_index, "Describe the colours.")
    assert edited == [*first, {"role": "user", "content": [{"path": "/tmp/a.png"}]},
                      {"role": "user", "content": "Describe the colours."}]


def test_edit_of_a_message_holding_files_and_text() -> None:
    chat = [{"role": "user", "content": [{"path": "/tmp/a.png"}, "Old."]},
            {"role": "assistant", "content": "Answer."}]
    assert history.for_edit(chat, 0, "New.") == [
        {"role": "user", "content": [{"path": "/tmp/a.png"}]},
        {"role": "user", "content": "New."},
    ]


def test_edit_refuses_what_cannot_be_edited() -> None:
    chat = answered("Hello.")
    with pytest.raises(BadInput):
        history.for_edit(chat, 1, "An answer is not mine to edit.")
    with pytest.raises(BadInput):
        history.for_edit(chat, 0, "   ")
    with pytest.raises(BadInput):
        history.for_edit(chat, 99, "Out of range.")


def test_a_stop_is_noted_once() -> None:
    partial = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}]
    stopped = history.with_stop_noted(partial)
    assert stopped[-1]["metadata"]["title"] == history.STOPPED_TITLE
    assert history.with_stop_noted(stopped) == stopped
    finished = answered("Hi")
    assert history.with_stop_noted(finished) == finished
    assert history.with_stop_noted([]) == []


def test_a_stopped_answer_says_how_far_it_got() -> None:
    partial = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}]
    recorder = StatsRecorder()
    recorder.tokens(1)
    recorder.tokens(2)
    stats = recorder.finish(engine="embedded", adapter=None, finish_reason="stopped",
                            prompt_tokens=9, prompt_text_tokens=9, prompt_image_tokens=0,
                            prompt_audio_tokens=0, missing=("engine timings",))
    noted = history.with_stop_noted(partial, stats)[-1]
    assert noted["metadata"]["title"].startswith(history.STOPPED_TITLE + " · ")
    assert "3 tokens in" in noted["metadata"]["title"]
    assert noted["content"].startswith("Stopped by you")
    assert "| Completion tokens | 3 (stopped) |" in noted["content"]
    assert "Not reported by this engine: engine timings." in noted["content"]
    # Stopped before any token: nothing measured to show.
    recorder = StatsRecorder()
    stats = recorder.finish(engine="embedded", adapter=None, finish_reason="stopped",
                            prompt_tokens=9, prompt_text_tokens=9, prompt_image_tokens=0,
                            prompt_audio_tokens=0)
    noted = history.with_stop_noted(partial[:1], stats)[-1]
    assert noted["metadata"]["title"] == history.STOPPED_TITLE
    assert noted["content"] == "Stopped before the answer began."


def test_split_content_reads_every_shape() -> None:
    assert history.split_content("plain") == ("plain", [])
    assert history.split_content([{"path": "/a.png"}, "x", {"type": "text", "text": "y"},
                                  {"type": "file", "file": {"path": "/b.wav"}}]) == (
        "x\ny", ["/a.png", "/b.wav"])
