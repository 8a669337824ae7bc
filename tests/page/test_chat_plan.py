"""A sent message's request is planned once: the step that accepts it plans it, and so checks
it, and its answer streams that plan. Counted by the planner's calls to the real engine's
tokenizer, with the chat tab's own handlers driven as its events drive them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from phi4ui.core.conversation import Conversation
from phi4ui.core.session_summary import SessionSummary
from phi4ui.page.chat_handlers import ChatHandlers
from phi4ui.page.file_owners import FileOwners
from phi4ui.page.files import PageFiles
from phi4ui.page.gradio_workarounds import Refusal

pytestmark = pytest.mark.engine
SYSTEM = "Be brief."


class CountingEngine:
    """The real engine; only its calls to `count_text_tokens` are counted."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.counted = 0

    def count_text_tokens(self, text: str) -> int:
        self.counted += 1
        return int(self._engine.count_text_tokens(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


async def answered(handlers: ChatHandlers, conversation: Conversation, system: str) -> list[Any]:
    updates: AsyncIterator[Any] = handlers.answer(conversation, SessionSummary(), system, 0.0,
                                                  1.0, 16, None, None)  # type: ignore[arg-type]
    return [update async for update in updates]


def test_the_answer_streams_the_request_its_message_was_accepted_with(
        embedded_engine, engine_loop, tmp_path: Path) -> None:
    engine = CountingEngine(embedded_engine)
    handlers = ChatHandlers(engine, None, PageFiles(FileOwners(tmp_path)))  # type: ignore[arg-type]
    conversation = Conversation()

    engine_loop.run(handlers.accept({"text": "Name three rivers.", "files": []}, conversation,
                                    SYSTEM, Refusal(), None))  # type: ignore[arg-type]
    planned = engine.counted
    assert planned > 0
    updates = engine_loop.run(answered(handlers, conversation, SYSTEM))
    assert engine.counted == planned
    assert updates[-1][1].answers == 1  # the answer finished, with its statistics
    assert conversation.stop.request is not None
    assert conversation.stop.request.sampling.max_tokens == 16  # the answer's own settings

    # A retry is not checked on accepting: its answer plans for itself.
    engine_loop.run(handlers.accept_retry(conversation, Refusal()))
    engine_loop.run(answered(handlers, conversation, SYSTEM))
    assert engine.counted > planned


def test_a_system_prompt_changed_before_the_answer_is_planned_for(
        embedded_engine, engine_loop, tmp_path: Path) -> None:
    engine = CountingEngine(embedded_engine)
    handlers = ChatHandlers(engine, None, PageFiles(FileOwners(tmp_path)))  # type: ignore[arg-type]
    conversation = Conversation()
    engine_loop.run(handlers.accept({"text": "Name three rivers.", "files": []}, conversation,
                                    SYSTEM, Refusal(), None))  # type: ignore[arg-type]
    planned = engine.counted
    engine_loop.run(answered(handlers, conversation, "Answer in French."))
    assert engine.counted > planned
    assert conversation.stop.request is not None
    assert conversation.stop.request.system == "Answer in French."
