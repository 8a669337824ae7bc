"""One browser session's conversation, kept on the server. No Gradio in it.

The page shows `messages`, but never reads them back from the browser: sending,
retrying, editing, undoing, rating and exporting all start from this copy. A
file reaches the engine, the record or the page only if the visitor may use it
(`file_access`): its own uploads and the app's examples. The busy flag and the
stop signal live here too, so that one answer at a time runs per session, and the
request planned when a message was accepted, so that its answer need not plan
(decode its media, count its tokens) again.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from phi4ui.core.chat import ChatRequest, Sampling
from phi4ui.core.history import History, answer_ids, files_of
from phi4ui.core.stats import StatsRecorder
from phi4ui.errors import BadInput

# An accepted message whose answer step has not begun after this long (the connection
# dropped between the two) no longer holds the session.
START_GRACE_S = 30.0
MAX_MESSAGE_CHARS = 100_000  # as the page's text box allows
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
NOT_YOURS = ("An attached file is not one you uploaded on this page, so it was not used. "
             "Attach it again.")


class StopSignal:
    """Set by Stop (or Clear), read by the streaming answer, which it also wakes while it
    waits for the engine. It also keeps the request being streamed and the app's count of
    its tokens, from which a stopped answer's line tells how far it got."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.request: ChatRequest | None = None
        self.progress: StatsRecorder | None = None

    @property
    def requested(self) -> bool:
        return self.asked.is_set()

    def ask(self) -> None:
        self.asked.set()

    def started(self, request: ChatRequest) -> None:
        self.request, self.progress = request, StatsRecorder()


@dataclass(frozen=True)
class CheckedPlan:
    """The request planned, and so checked, when a message was accepted: for answering
    `messages` (the very list) with the system prompt `system`."""

    messages: History
    system: str
    request: ChatRequest

    def request_for(self, sampling: Sampling, max_model_len: int) -> ChatRequest:
        """The request with the answer's own sampling; its new tokens fit what the prompt
        leaves of the context, as `plan_request` fits them."""
        room = max_model_len - self.request.tokens.total
        return replace(self.request,
                       sampling=replace(sampling, max_tokens=min(sampling.max_tokens, room)))


@dataclass
class Conversation:
    messages: History = field(default_factory=list)
    busy: bool = False
    answering: bool = False  # the answer step of the accepted message has begun
    accepted_at: float = 0.0
    stop: StopSignal = field(default_factory=StopSignal)
    plan: CheckedPlan | None = None
    send_id: str = ""  # the browser's id of the last send whose step began

    def begin(self, messages: History, *, system: str | None = None,
              planned: ChatRequest | None = None) -> None:
        """An accepted message: the chat to answer, with a fresh stop signal, and the
        request already `planned` for it with `system`, when there is one."""
        self.messages, self.stop = messages, StopSignal()
        self.busy, self.answering, self.accepted_at = True, False, time.monotonic()
        self.plan = (CheckedPlan(messages, system, planned)
                     if planned is not None and system is not None else None)

    def take_plan(self, system: str) -> CheckedPlan | None:
        """The plan made when the message was accepted, once, if the chat to answer and
        the system prompt are still the ones it was made for."""
        plan, self.plan = self.plan, None
        if plan is None or plan.messages is not self.messages or plan.system != system:
            return None
        return plan

    def end(self, messages: History) -> None:
        self.messages, self.busy, self.answering = messages, False, False
        self.plan = None

    def is_busy(self) -> bool:
        if not self.busy:
            return False
        return self.answering or time.monotonic() - self.accepted_at < START_GRACE_S

    def answer_ids(self) -> list[str]:
        """The record ids of this session's answers still in the chat."""
        return answer_ids(self.messages)


def checked_message(message: Any, may_use: Callable[[str], bool]) -> dict[str, Any]:
    """A MultimodalTextbox value from the browser as plain text and files this visitor
    may use; raises `BadInput` for anything else."""
    if not isinstance(message, Mapping):
        return {"text": "", "files": []}
    files = checked_files(files_of(message), may_use)
    return {"text": checked_text(message.get("text")), "files": files}


def checked_text(text: Any, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Typed text as the server takes it: a string of at most `limit` characters, with any
    lone surrogate (which no encoding can carry) shown as the replacement character."""
    if not isinstance(text, str):
        return ""
    if len(text) > limit:
        raise BadInput(f"The message is {len(text):,} characters long; at most {limit:,} fit "
                       "in one message. Shorten it, or attach the text in parts.")
    return _LONE_SURROGATE.sub("\ufffd", text)


def checked_files(paths: Iterable[str], may_use: Callable[[str], bool]) -> list[str]:
    paths = list(paths)
    if not all(isinstance(path, str) and may_use(path) for path in paths):
        raise BadInput(NOT_YOURS)
    return paths


def usable_files(paths: Iterable[str], may_use: Callable[[str], bool]) -> list[str]:
    """The paths this visitor may use; the others dropped without a word (for values that
    only echo what the page already holds)."""
    return [path for path in paths if isinstance(path, str) and may_use(path)]
