"""The server's side of a session without a web server: which files a visitor may use,
what typed text becomes, when a session counts as busy, and when the request planned on
accepting a message serves its answer."""

from __future__ import annotations

import pytest

from phi4ui.core.chat import PromptLimits, Sampling, Turn, plan_request
from phi4ui.core.conversation import (
    MAX_MESSAGE_CHARS,
    NOT_YOURS,
    START_GRACE_S,
    Conversation,
    checked_message,
    checked_text,
)
from phi4ui.errors import BadInput
from phi4ui.page.file_owners import FileOwners


@pytest.fixture()
def owners(tmp_path):
    return FileOwners(tmp_path / "uploads")


def test_a_visitor_may_use_only_the_folders_granted_to_it(owners, tmp_path):
    mine = tmp_path / "uploads" / "a1b2" / "photo.png"
    public = tmp_path / "uploads" / "c3d4" / "house.png"
    owners.grant("alice", [mine])
    owners.make_public([public])
    assert owners.may_use("alice", mine)
    assert not owners.may_use("bob", mine)
    assert not owners.may_use("", mine)
    assert owners.may_use("bob", public)
    # another name in the same folder is the same content's folder: still alice's
    assert owners.may_use("alice", mine.with_name("other.png"))
    assert not owners.may_use("alice", tmp_path / "uploads" / "a1b2")  # a folder, no file


@pytest.mark.parametrize("path", ["/etc/passwd", "/proc/self/environ", "uploads/a1b2/x.png",
                                  "{root}/../secret.txt", "{root}/a1b2/../../secret.txt",
                                  "{root}/a1b2/../c3d4/x.png"])
def test_paths_outside_or_escaping_the_upload_folder_are_never_usable(owners, tmp_path, path):
    owners.grant("alice", [tmp_path / "uploads" / "a1b2" / "x.png"])
    assert not owners.may_use("alice", path.format(root=tmp_path / "uploads"))


def test_files_outside_the_upload_folder_are_left_to_the_web_framework(owners):
    assert owners.may_fetch("bob", "/srv/static/logo.svg")
    assert not owners.may_fetch("bob", owners.root / "a1b2" / "x.png")


def test_a_message_naming_a_file_not_granted_is_refused_without_saying_if_it_exists(owners,
                                                                                   tmp_path):
    messages = []
    for path in ["/etc/hostname", "/no/such/file", str(owners.root / "ffff" / "x.png")]:
        with pytest.raises(BadInput) as refused:
            checked_message({"text": "hi", "files": [path]},
                            lambda p: owners.may_use("bob", p))
        messages.append(str(refused.value))
    assert messages == [NOT_YOURS] * 3


def test_typed_text_is_bounded_and_encodable():
    assert checked_text("caf\u00e9 \ud800 ok") == "caf\u00e9 \ufffd ok"
    checked_text("x" * MAX_MESSAGE_CHARS)
    with pytest.raises(BadInput, match="100,001 characters"):
        checked_text("x" * (MAX_MESSAGE_CHARS + 1))
    assert checked_text(None) == "" and checked_text(["a"]) == ""
    assert checked_message("not a message", lambda _: True) == {"text": "", "files": []}


def test_an_accepted_message_whose_answer_never_began_stops_holding_the_session():
    conversation = Conversation()
    conversation.begin([{"role": "user", "content": "hi"}])
    assert conversation.is_busy()
    conversation.accepted_at -= START_GRACE_S + 1  # the answer step never came
    assert not conversation.is_busy()
    conversation.begin([{"role": "user", "content": "again"}])
    conversation.answering = True
    conversation.accepted_at -= START_GRACE_S + 1  # a long answer still holds it
    assert conversation.is_busy()
    conversation.end(conversation.messages)
    assert not conversation.is_busy()


LIMITS = PromptLimits(max_images=2, max_audios=2, max_model_len=600)


def planned_conversation(system: str = "Be brief.") -> Conversation:
    messages = [{"role": "user", "content": "Tell me a story."}]
    request = plan_request(system, [Turn("user", ("Tell me a story.",))], Sampling(), LIMITS,
                           lambda text: len(text.split()))
    conversation = Conversation()
    conversation.begin(messages, system=system, planned=request)
    return conversation


def test_the_accepted_plan_serves_its_answer_once_with_the_answers_own_sampling():
    conversation = planned_conversation()
    plan = conversation.take_plan("Be brief.")
    assert plan is not None
    room = LIMITS.max_model_len - plan.request.tokens.total
    greedy = plan.request_for(Sampling(temperature=0.7, max_tokens=64, seed=3), 600)
    assert (greedy.sampling.temperature, greedy.sampling.max_tokens, greedy.sampling.seed) == (
        0.7, 64, 3)
    assert greedy.turns == plan.request.turns and greedy.tokens == plan.request.tokens
    # New tokens never overrun the context, as when the answer plans for itself.
    assert plan.request_for(Sampling(max_tokens=10_000), 600).sampling.max_tokens == room
    assert conversation.take_plan("Be brief.") is None


def test_a_plan_for_another_system_prompt_or_chat_is_not_used():
    conversation = planned_conversation()
    assert conversation.take_plan("Be verbose.") is None
    conversation = planned_conversation()
    conversation.begin(list(conversation.messages))  # a retry: no plan of its own
    assert conversation.take_plan("Be brief.") is None
    conversation = planned_conversation()
    conversation.messages = [*conversation.messages, {"role": "user", "content": "More."}]
    assert conversation.take_plan("Be brief.") is None
    conversation = planned_conversation()
    conversation.end([])
    assert conversation.take_plan("Be brief.") is None
