"""A sent message's request is planned once: the send step plans it, and so checks it,
before anything changes, then streams that plan. Counted by the planner's calls to the real
engine's tokenizer, with the chat tab's own handlers driven as its events drive them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gradio as gr
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


async def collected(updates: AsyncIterator[Any]) -> list[Any]:
    return [update async for update in updates]


def sent(handlers: ChatHandlers, conversation: Conversation, text: str, system: str,
         max_tokens: int = 16) -> AsyncIterator[Any]:
    return handlers.send({"text": text, "files": []}, "1", conversation, SessionSummary(),
                         system, 0.0, 1.0, max_tokens, None, Refusal(),
                         None)  # type: ignore[arg-type]


def test_a_sent_message_is_planned_once_as_a_retry_is(embedded_engine, engine_loop,
                                                      tmp_path: Path) -> None:
    engine = CountingEngine(embedded_engine)
    handlers = ChatHandlers(engine, None, PageFiles(FileOwners(tmp_path)))
    conversation = Conversation()

    updates = engine_loop.run(collected(sent(handlers, conversation, "Name three rivers.",
                                             SYSTEM)))
    planned = engine.counted
    assert planned > 0
    assert updates[-1][1].answers == 1  # the answer finished, with its statistics
    assert conversation.stop.request is not None
    assert conversation.stop.request.sampling.max_tokens == 16  # the send's own settings

    # A retry is checked by its answer step, which plans it as a send does: once.
    engine_loop.run(handlers.accept_retry(conversation, Refusal()))
    engine_loop.run(collected(handlers.answer(conversation, SessionSummary(), SYSTEM, 0.0,
                                              1.0, 16, None, None)))  # type: ignore[arg-type]
    assert engine.counted == 2 * planned


def test_a_send_shows_the_message_before_the_answer_and_streams_with_its_settings(
        embedded_engine, engine_loop, tmp_path: Path) -> None:
    handlers = ChatHandlers(embedded_engine, None, PageFiles(FileOwners(tmp_path)))
    conversation = Conversation()
    updates = engine_loop.run(collected(sent(handlers, conversation, "Name three rivers.",
                                             "Answer in French.", max_tokens=24)))
    first_chat = updates[0][0]
    assert [m["role"] for m in first_chat] == ["user"]  # shown while the engine reads it
    assert updates[-1][0][1]["role"] == "assistant"
    assert conversation.stop.request is not None
    assert conversation.stop.request.system == "Answer in French."
    assert conversation.stop.request.sampling.max_tokens == 24


def test_a_refused_send_changes_nothing(embedded_engine, engine_loop, tmp_path: Path) -> None:
    handlers = ChatHandlers(embedded_engine, None, PageFiles(FileOwners(tmp_path)))
    conversation = Conversation()
    refusal = Refusal()
    empty = handlers.send({"text": "  ", "files": []}, "1", conversation, SessionSummary(),
                          SYSTEM, 0.0, 1.0, 16, None, refusal, None)  # type: ignore[arg-type]
    with pytest.raises(gr.Error):
        engine_loop.run(collected(empty))
    assert refusal.reason and conversation.messages == [] and not conversation.busy
