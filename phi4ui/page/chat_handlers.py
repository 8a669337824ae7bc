"""What each event of the chat tab and its side panel does: one `ChatHandlers` per page,
bound to the engine, the store and the visitor's files. `chat_wiring` says when each runs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from html import escape
from typing import Any

import gradio as gr
import pandas as pd

from phi4ui.core import answer_stream, cost_preview
from phi4ui.core import history as chat_history
from phi4ui.core.chat import ChatRequest
from phi4ui.core.chat_messages import turn_from_message
from phi4ui.core.conversation import (
    Conversation,
    StopSignal,
    checked_files,
    checked_message,
    checked_text,
    usable_files,
)
from phi4ui.core.engine import Engine
from phi4ui.core.generation_settings import (
    MIN_NEW_TOKENS,
    TEMPERATURE_RANGE,
    TOP_P_RANGE,
    GenerationSettings,
)
from phi4ui.core.history import History
from phi4ui.core.session_summary import SessionSummary
from phi4ui.core.stats import EngineSnapshot, RequestStats
from phi4ui.core.throughput import ThroughputHistory
from phi4ui.errors import Phi4UIError
from phi4ui.evaluation import recording
from phi4ui.evaluation.store import Store
from phi4ui.page import panels
from phi4ui.page.examples import message_for
from phi4ui.page.files import PageFiles, login_of
from phi4ui.page.gradio_workarounds import Refusal
from phi4ui.page.safe_markdown import WORD_JOINER, safe_markdown

log = logging.getLogger(__name__)
TICK_S = 2.0
PLOT_WINDOW_S = 300.0
BUSY = "An answer is still being written. Wait for it, or press Stop first."
SOMETHING_BROKE = ("Something went wrong on our side and the answer stopped. Your conversation "
                   "is kept; press Retry to try again.")
SOMETHING_BROKE_BEFORE = ("Something went wrong on our side while checking your message. It is "
                          "back in the input; try sending it again.")


class ChatHandlers:
    """What each event does; one instance per page, bound to the engine."""

    def __init__(self, engine: Engine, store: Store | None, files: PageFiles,
                 forgotten: Callable[[str | None], str | None] = lambda _: None) -> None:
        """`forgotten`: why a session's conversation was let go on the server (once), or
        None; its page still shows the chat."""
        self.engine = engine
        self.store = store
        self.files = files
        self.forgotten = forgotten
        self.throughput = ThroughputHistory(window_s=PLOT_WINDOW_S)
        self._panels: tuple[float, tuple[Any, ...]] | None = None  # (when, outputs)
        self._panels_lock = asyncio.Lock()

    # ------------------------------------------------------------ starting an answer

    # The steps are async and return plain values: a sync handler costs a thread hop, and a
    # component returned as an update makes Gradio rebuild it and its JSON schema.

    async def send(self, message: Any, send_id: Any, conversation: Conversation,
                   session: SessionSummary, system: Any, temperature: Any, top_p: Any,
                   max_tokens: Any, seed: Any, refusal: Refusal, request: gr.Request
                   ) -> AsyncIterator[tuple[Any, Any]]:
        """Sending a message, in one step: checks it against the engine before anything
        changes (a refusal leaves the conversation as it was, and `unsent` tells why), then
        shows it while the engine reads it and streams its answer as `answer` does."""
        conversation.send_id, refusal.reason = str(send_id), ""  # the reason is this send's
        settings = refusal.unless_fails(GenerationSettings.checked, system, temperature,
                                        top_p, max_tokens, seed, max_new_tokens(self.engine))
        await self._accept(message, conversation, settings, refusal, request)
        answered = self._answer(conversation, session, settings, request, announce=True)
        async with contextlib.aclosing(answered):
            async for update in answered:
                yield update

    async def _accept(self, message: Any, conversation: Conversation,
                      settings: GenerationSettings, refusal: Refusal, request: gr.Request
                      ) -> None:
        refusal.refuse_if(conversation.is_busy(), BUSY)
        session_id = getattr(request, "session_hash", None)
        if not conversation.messages and (notice := self.forgotten(session_id)):
            refusal.refuse(notice)
        checked = refusal.unless_fails(checked_message, message, self.files.checker(request))
        refusal.unless_fails(turn_from_message, checked)  # not empty
        to_answer = [*conversation.messages, *chat_history.user_messages(checked)]
        try:
            planned = await answer_stream.plan(self.engine, to_answer, None, settings.system,
                                               settings.sampling())
        except Phi4UIError as error:
            refusal.refuse(str(error))
        except Exception:
            log.exception("checking a message failed")
            refusal.refuse(SOMETHING_BROKE_BEFORE)
        conversation.begin(to_answer, system=settings.system, planned=planned)

    async def unsent(self, message: Any, typed: Any, send_id: Any, conversation: Conversation,
                     refusal: Refusal, request: gr.Request) -> Any:
        """After a send that did not go through, the message (with only the files this
        visitor may use) goes back to the input, unless something new was typed there:
        refused by a check, with a warning that says why; refused by Gradio before the step
        began (its own error says why) or cleared before it, silently. A send that began and
        was then cleared is over: nothing comes back."""
        reason, refusal.reason = refusal.reason, ""
        if reason:
            gr.Warning(escape(reason))
        elif conversation.send_id == str(send_id):
            return gr.skip()
        if not isinstance(message, dict) or (isinstance(typed, dict) and any(typed.values())):
            return gr.skip()
        return _usable_part(message, self.files.checker(request))

    async def accept_retry(self, conversation: Conversation, refusal: Refusal) -> History:
        refusal.refuse_if(conversation.is_busy(), BUSY)
        conversation.begin(refusal.unless_fails(chat_history.for_retry, conversation.messages))
        return _shown(conversation.messages)

    async def accept_edit(self, conversation: Conversation, refusal: Refusal,
                          edit: gr.EditData) -> History:
        refusal.refuse_if(conversation.is_busy(), BUSY)
        index = edit.index[0] if isinstance(edit.index, list | tuple) else edit.index
        if not isinstance(index, int) or isinstance(index, bool):
            refusal.refuse("Only your own messages can be edited.")
        # The page shows text with invisible word joiners (see `safe_markdown`); not typed.
        text = refusal.unless_fails(checked_text, edit.value).replace(WORD_JOINER, "")
        conversation.begin(refusal.unless_fails(chat_history.for_edit, conversation.messages,
                                                index, text))
        return _shown(conversation.messages)

    # ------------------------------------------------------------ streaming it

    async def answer(self, conversation: Conversation, session: SessionSummary, system: str,
                     temperature: float, top_p: float, max_tokens: float, seed: float | None,
                     request: gr.Request) -> AsyncIterator[tuple[Any, Any]]:
        """Streams the answer to the newest user message of the conversation (a retry's, an
        edit's), as `send` streams a new message's."""
        if not conversation.busy:  # cleared before it began: nothing to answer or show
            return
        settings = GenerationSettings.checked(system, temperature, top_p, max_tokens, seed,
                                              max_new_tokens(self.engine))
        answered = self._answer(conversation, session, settings, request)
        async with contextlib.aclosing(answered):
            async for update in answered:
                yield update

    async def _answer(self, conversation: Conversation, session: SessionSummary,
                      settings: GenerationSettings, request: gr.Request, announce: bool = False
                      ) -> AsyncGenerator[tuple[Any, Any], None]:
        """Streams the answer and ends it: a stop is noted under the answer, with how far it
        got, and the send button comes back in the browser after the last update. Each
        update carries only the chat (and, at the end, the session): `gr.skip()` for
        another component would make Gradio rebuild that component on every update.
        `announce`: the first update shows the chat as it is, while the engine reads it."""
        stopped = conversation.stop
        try:
            if not stopped.requested:
                streamed = self._stream(conversation, session, settings, request, announce)
                async with contextlib.aclosing(streamed):  # at once, when the page has gone
                    async for update in streamed:
                        yield update
        finally:
            # Also when the page's connection dropped and nothing more can be shown.
            if conversation.stop is stopped and conversation.busy:
                conversation.end(chat_history.with_stop_noted(
                    conversation.messages, self._stopped_stats(stopped)))
        if stopped.requested and conversation.stop is stopped:
            yield _shown(conversation.messages), gr.skip()

    async def _stream(self, conversation: Conversation, session: SessionSummary,
                      settings: GenerationSettings, request: gr.Request, announce: bool
                      ) -> AsyncGenerator[tuple[History, Any], None]:
        """The chat as the answer grows, with the session once it is complete (else a skip);
        ends at a stop, or with the reason the answer broke off."""
        stopped = conversation.stop
        conversation.answering = True
        history = list(conversation.messages)
        try:
            chat_request = await self._request(conversation, history, settings)
            stopped.started(chat_request)
            updates = answer_stream.answer(self.engine, chat_request, progress=stopped.progress,
                                           stop=stopped.asked, announce=announce)
            async with contextlib.aclosing(updates):
                async for update in updates:
                    if stopped.requested:
                        return  # closing the updates aborts the engine request
                    conversation.messages = [*history, {"role": "assistant",
                                                        "content": update.text}
                                             ] if update.text else history
                    if update.stats is None:
                        yield _shown(conversation.messages), gr.skip()  # skipping a state is free
                        continue
                    answer = await self._record(history, update, request)
                    conversation.messages = [
                        *history, answer,
                        *chat_history.answer_annotations(update.stats, update.notes)]
                    yield _shown(conversation.messages), session.add(update.stats)
        except Phi4UIError as error:
            conversation.messages = _interrupted(conversation.messages, str(error))
            yield _shown(conversation.messages), gr.skip()
        except Exception:
            log.exception("streaming an answer failed")
            conversation.messages = _interrupted(conversation.messages, SOMETHING_BROKE)
            yield _shown(conversation.messages), gr.skip()

    async def _request(self, conversation: Conversation, history: History,
                       settings: GenerationSettings) -> ChatRequest:
        """The request accepting the message planned, when the chat and the system prompt
        are still those it was planned for; else (a retry, an edit) planned now."""
        plan = conversation.take_plan(settings.system)
        if plan is not None:
            return plan.request_for(settings.sampling(), self.engine.prompt_limits.max_model_len)
        return await answer_stream.plan(self.engine, history, None, settings.system,
                                        settings.sampling())

    async def _record(self, history: History, update: answer_stream.AnswerUpdate,
                      request: gr.Request) -> dict[str, Any]:
        """The finished answer's message, marked with its record id when it was recorded."""
        message = {"role": "assistant", "content": update.text}
        if self.store is None:
            return message
        try:
            recorded = await recording.record_update(
                self.store, self.engine.info, update,
                parent_id=chat_history.last_answer_id(history), user=login_of(request))
        except Phi4UIError as error:
            gr.Warning(escape(str(error)))
            return message
        for note in recorded.notes:
            gr.Info(escape(note))
        return chat_history.mark(message, recorded.answer_id)

    async def not_started(self, conversation: Conversation) -> History:
        """Runs when the answer step failed before it began: Gradio checks the settings
        sent before it runs the step."""
        if conversation.busy and not conversation.answering and not conversation.stop.requested:
            conversation.end(_interrupted(conversation.messages, self._not_started()))
        return _shown(conversation.messages)

    def _not_started(self) -> str:
        low, high = TEMPERATURE_RANGE
        return (f"The answer could not start: the settings sent are not valid (temperature "
                f"{low:g} to {high:g}, top-p {TOP_P_RANGE[0]:g} to {TOP_P_RANGE[1]:g}, max new "
                f"tokens {MIN_NEW_TOKENS} to {max_new_tokens(self.engine):,}, seed a whole "
                "number from 0). Reset the settings and press Retry.")

    def _stopped_stats(self, stopped: StopSignal) -> RequestStats | None:
        if stopped.request is None or stopped.progress is None:  # it never began
            return None
        return answer_stream.stopped_stats(self.engine, stopped.request, stopped.progress)

    # ------------------------------------------------------------ other chat actions

    async def undo(self, conversation: Conversation, refusal: Refusal) -> tuple[Any, Any]:
        refusal.refuse_if(conversation.is_busy(), BUSY)
        history, message = refusal.unless_fails(chat_history.undo, conversation.messages)
        conversation.end(history)
        return _shown(history), message

    async def request_stop(self, conversation: Conversation) -> None:
        conversation.stop.ask()

    async def clear(self, conversation: Conversation) -> None:
        conversation.stop.ask()
        conversation.end([])

    async def preview(self, message: Any, conversation: Conversation, system: Any,
                      request: gr.Request) -> str:
        try:
            checked = checked_message(message, self.files.checker(request))
            system = GenerationSettings.checked(system, None, None, None, None, 0).system
            return await cost_preview.describe(self.engine, conversation.messages, checked, system)
        except Phi4UIError as error:
            return escape(str(error))
        except Exception:
            log.exception("estimating the prompt size failed")
            return ""

    def use_example(self, selected: gr.SelectData) -> Any:
        # By index into our own list: the browser's copy of the example is not trusted.
        message = message_for(selected.index)
        return message if message else gr.skip()

    def attach_photo(self, photo: Any, message: Any, request: gr.Request) -> tuple[Any, Any]:
        if not photo or not isinstance(photo, str):
            return gr.skip(), gr.skip()
        may_use = self.files.checker(request)
        try:
            checked_files([photo], may_use)
        except Phi4UIError as error:
            gr.Warning(escape(str(error)))
            return gr.skip(), None
        kept = _usable_part(message if isinstance(message, dict) else {}, may_use)
        return {"text": kept["text"], "files": [*kept["files"], photo]}, None

    # ------------------------------------------------------------ settings

    def load_settings(self, stored: Any) -> list[Any]:
        settings = GenerationSettings.from_stored(stored, max_new_tokens(self.engine))
        return _settings_values(settings)

    def save_settings(self, system: str, temperature: float, top_p: float, max_tokens: float,
                      seed: float | None) -> dict[str, Any]:
        return GenerationSettings.checked(system, temperature, top_p, max_tokens, seed,
                                          max_new_tokens(self.engine)).stored()

    def default_settings(self) -> list[Any]:
        return _settings_values(GenerationSettings())

    def card_settings(self) -> list[Any]:
        return _settings_values(GenerationSettings.card_greedy(max_new_tokens(self.engine)))

    # ------------------------------------------------------------ engine panel

    async def refresh(self, session: SessionSummary) -> tuple[Any, ...]:
        """The engine panel, and the line of this page's session. Every open page asks every
        TICK_S; they all see the same engine, so one reading serves them all for half a
        tick."""
        async with self._panels_lock:
            now = time.monotonic()
            if self._panels is None or now - self._panels[0] >= TICK_S / 2:
                self._panels = (now, await self._panel_outputs())
            return (*self._panels[1], session.text())

    async def _panel_outputs(self) -> tuple[Any, ...]:
        engine = self.engine
        info, status = engine.info, engine.status
        snapshot = await self._snapshot() if status.state == "ready" else None
        if snapshot is not None:
            self.throughput.observe(snapshot.generation_tokens_total, snapshot.taken_at)
        return (panels.header_html(info, status), panels.status_text(status),
                panels.live_markdown(snapshot, self.throughput.latest() if snapshot else None),
                rates_frame(self.throughput.rates(time.time())),
                panels.engine_settings_markdown(info))

    async def _snapshot(self) -> EngineSnapshot | None:
        try:
            return await self.engine.snapshot()
        except Exception:  # the panel says "n/a"; the next tick tries again
            log.debug("engine snapshot failed", exc_info=True)
            return None


def _shown(messages: History) -> History:
    """The chat as the browser gets it: a copy (the server's stays its own) whose text
    cannot make the browser load anything from another host. Each streamed update shows
    the whole chat again; the messages before the last one are those of earlier updates,
    and their safe text is remembered rather than made again."""
    last = len(messages) - 1
    return [{**message, "content": (_remembered_safe if n < last else safe_markdown)(
                message["content"])}
            if isinstance(message.get("content"), str) else dict(message)
            for n, message in enumerate(messages)]


# Pages' earlier messages: a few hundred conversations' worth of text at most.
_remembered_safe = functools.lru_cache(maxsize=4096)(safe_markdown)


def _usable_part(message: dict[str, Any], may_use: Callable[[str], bool]) -> dict[str, Any]:
    """An input's value from the browser: its text, and only the files this visitor may use."""
    text = message.get("text")
    return {"text": text if isinstance(text, str) else "",
            "files": usable_files(chat_history.files_of(message), may_use)}


def _interrupted(history: History, message: str) -> History:
    gr.Warning(escape(message))
    return [*history, chat_history.annotation(chat_history.INTERRUPTED_TITLE, message)]


def _settings_values(settings: GenerationSettings) -> list[Any]:
    return [settings.system, settings.temperature, settings.top_p, settings.max_tokens,
            settings.seed]


def max_new_tokens(engine: Engine) -> int:
    return engine.info.max_model_len or 16384


def rates_frame(points: list[tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame(points, columns=["seconds", "tokens/s"], dtype=float)
