"""One answer, from the page's inputs to a stream of updates: the glue between
chat, media and the engine, with no Gradio in it.

`answer()` prepares the media of the whole conversation, plans the request,
streams the engine and yields `AnswerUpdate`s; updates are coalesced so that a
fast engine does not flood the browser (neither the first text nor the last is ever
delayed), and the engine's stream is read as fast as it comes, however slowly updates
are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from phi4ui.core.chat import (
    ChatRequest,
    MediaRef,
    Sampling,
    Turn,
    plan_request,
)
from phi4ui.core.chat_messages import turn_from_message, turns_from_history
from phi4ui.core.engine import Engine, Event, Finished, TextDelta
from phi4ui.core.media import MediaLimits, prepare
from phi4ui.core.stats import RequestStats, StatsRecorder
from phi4ui.errors import BadInput

log = logging.getLogger(__name__)
# Each update costs the web server a diff and a send, and the browser a walk over the page's
# components and a new rendering of the answer: 20 a second read as smooth streaming.
UPDATE_INTERVAL_S = 0.05
MAX_UPDATE_INTERVAL_S = 0.1  # a person sees an answer move at least this often


@dataclass(frozen=True)
class AnswerUpdate:
    text: str
    notes: tuple[str, ...] = ()
    stats: RequestStats | None = None
    request: ChatRequest | None = None

    @property
    def done(self) -> bool:
        return self.stats is not None


async def prepare_turns(turns: Sequence[Turn], limits: MediaLimits,
                        sources: dict[str, str] | None = None) -> tuple[list[Turn], list[str]]:
    """Decodes every attached file; a file of an earlier turn that fails is left out with a
    note, one of the newest turn raises `BadInput`. `sources`, when given, receives the
    file each medium was read from, by content hash."""
    prepared: list[Turn] = []
    notes: list[str] = []
    for index, turn in enumerate(turns):
        newest = index == len(turns) - 1
        parts: list[Any] = []
        for part in turn.parts:
            if not isinstance(part, MediaRef):
                parts.append(part)
                continue
            try:
                item = await asyncio.to_thread(prepare, part.path, limits)
            except BadInput as error:
                if newest:
                    raise
                notes.append(f"left out of the prompt: {error}")
                continue
            parts.append(item)
            if sources is not None:
                sources.setdefault(item.sha256, part.path)
            notes.extend(item.notes if newest else ())
        prepared.append(Turn(turn.role, tuple(parts)))
    return prepared, notes


async def plan(engine: Engine, history: Sequence[Mapping[str, Any]],
               message: Mapping[str, Any] | str | None, system: str,
               sampling: Sampling) -> ChatRequest:
    """The request for answering `history` (+ `message`, when it is not in the history yet)."""
    turns = turns_from_history(history)
    if message is not None:
        turns.append(turn_from_message(message))
    sources: dict[str, str] = {}
    prepared, notes = await prepare_turns(turns, engine.media_limits, sources)
    # Counting tokens takes time in proportion to the text: off the event loop.
    request = await asyncio.to_thread(plan_request, system, prepared, sampling,
                                      engine.prompt_limits, engine.count_text_tokens)
    if notes:
        request = ChatRequest(**{**request.__dict__, "notes": tuple(notes) + request.notes})
    used = {m.sha256 for m in request.images} | {m.sha256 for m in request.audios}
    return replace(request, media_files=tuple((h, p) for h, p in sources.items() if h in used))


class UpdatePacer:
    """Spaces a stream's page updates: each update costs the web server a diff and a
    send, so with many answers at once they are spread out, up to `max_updates_per_s`
    for all streams together, but never further apart than `max_interval_s`, so that
    every answer keeps moving. The first text of an answer is never held back."""

    def __init__(self, min_interval_s: float = UPDATE_INTERVAL_S,
                 max_interval_s: float = MAX_UPDATE_INTERVAL_S,
                 max_updates_per_s: float = 400.0) -> None:
        self.min_interval_s = min_interval_s
        self.max_interval_s = max_interval_s
        self.max_updates_per_s = max_updates_per_s
        self.active = 0

    def interval(self) -> float:
        wanted = self.active / self.max_updates_per_s
        return min(self.max_interval_s, max(self.min_interval_s, wanted))


PACER = UpdatePacer()  # shared by every session of this process


@dataclass
class _Drained:
    """What a reader task has taken from the engine's stream so far."""

    text: str = ""
    finished: Finished | None = None
    error: Exception | None = None
    grew: asyncio.Event = field(default_factory=asyncio.Event)  # new text, or the end
    complete: asyncio.Event = field(default_factory=asyncio.Event)  # all text is in
    ended: asyncio.Event = field(default_factory=asyncio.Event)


async def _drain(stream: AsyncIterator[Event], into: _Drained,
                 progress: StatsRecorder | None) -> None:
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                into.text += event.text
                if progress is not None:
                    progress.tokens(event.tokens)
                if event.last:
                    into.complete.set()
                into.grew.set()
            elif isinstance(event, Finished):
                into.finished = event
    except Exception as error:  # noqa: BLE001 - raised again to the reader of the updates
        into.error = error
    finally:
        into.complete.set()
        into.ended.set()
        into.grew.set()


async def answer(engine: Engine, request: ChatRequest, interval_s: float | None = None,
                 pacer: UpdatePacer = PACER, progress: StatsRecorder | None = None,
                 stop: asyncio.Event | None = None, announce: bool = False
                 ) -> AsyncGenerator[AnswerUpdate, None]:
    """Streams the engine's answer; stopping the iteration aborts the engine request.

    A reader task drains the engine's stream as fast as it comes, whether or not the
    caller has asked for the next update yet, and each update carries all the text so
    far: a web server that takes a while to send one update then sends the next with
    everything new, instead of one update per token. The text's last piece is sent at
    once, without waiting out the spacing or the answer's statistics. `interval_s` fixes
    the spacing of updates instead of the pacer's. `progress`, when given, counts every
    token as it arrives, so that an answer stopped midway can still say how far it got (see
    `stopped_stats`). Once `stop` is set the updates end, even while the engine is still
    silent (a long prompt being read). `announce`: a first update without text comes at
    once, while the engine request starts."""
    stream = engine.stream(request)
    drained = _Drained()
    reader = asyncio.create_task(_drain(stream, drained, progress))
    waker = None if stop is None else asyncio.create_task(_wake_on(stop, drained))
    pacer.active += 1
    try:
        if announce:
            yield AnswerUpdate(text="", notes=request.notes, request=request)
        while True:
            await drained.grew.wait()
            drained.grew.clear()
            if stop is not None and stop.is_set():
                return
            if drained.ended.is_set():
                break
            sent_at = time.monotonic()
            yield AnswerUpdate(text=drained.text, notes=request.notes, request=request)
            spacing = pacer.interval() if interval_s is None else interval_s
            await _until_set_or(drained.complete, sent_at + spacing - time.monotonic())
        if drained.error is not None:
            raise drained.error
        if drained.finished is not None:
            yield AnswerUpdate(text=drained.text, notes=request.notes,
                               stats=drained.finished.stats, request=request)
    finally:
        pacer.active -= 1
        for task in (reader, waker):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await stream.aclose()  # type: ignore[attr-defined]


async def _wake_on(stop: asyncio.Event, drained: _Drained) -> None:
    """Ends the answer's wait, for text or for the spacing between updates, at a stop."""
    await stop.wait()
    drained.complete.set()  # no more spacing: the answer ends at its next look
    drained.grew.set()


async def _until_set_or(event: asyncio.Event, seconds: float) -> None:
    """Waits `seconds` (any length, infinity included), less if `event` is set first."""
    if seconds <= 0 or event.is_set():
        return
    try:
        async with asyncio.timeout(None if math.isinf(seconds) else seconds):
            await event.wait()
    except TimeoutError:
        pass


async def final_update(engine: Engine, request: ChatRequest) -> AnswerUpdate | None:
    """The answer read to its end, for callers that show no progress (batches, replays,
    tests): the last update, with its stats; None if the engine ended without one."""
    final = None
    async for update in answer(engine, request, interval_s=float("inf")):
        final = update
    return final if final is not None and final.done else None


def stopped_stats(engine: Engine, request: ChatRequest, progress: StatsRecorder
                  ) -> RequestStats:
    """What the app saw of an answer stopped before it finished. The engine reports its
    own timings only for a finished request, so those are missing."""
    return progress.finish(
        engine=engine.info.kind, adapter=request.adapter, finish_reason="stopped",
        prompt_tokens=request.tokens.total, **request.tokens.split(),
        missing=("the engine's queue, prefill and decode times (the request was stopped)",))
