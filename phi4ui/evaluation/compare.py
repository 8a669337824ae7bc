"""Side by side: one input answered by two configurations at once, both streamed.

A `Configuration` is an engine, its sampling and an adapter choice: "auto" (the
planner's rule), "none" (base model, forced) or a named adapter (forced). Both
answers stream concurrently; when they are done each is recorded with a shared
pair id, and a vote for the better one is stored as a rating on each.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from phi4ui.core import answer_stream
from phi4ui.core.chat import ChatRequest, Sampling
from phi4ui.core.engine import Engine
from phi4ui.core.merged import merged
from phi4ui.core.stats import RequestStats
from phi4ui.errors import BadInput, Phi4UIError
from phi4ui.evaluation.recording import record
from phi4ui.evaluation.store import Store, Winner

log = logging.getLogger(__name__)
AdapterChoice = Literal["auto", "none", "vision", "speech"]
ADAPTER_CHOICES: tuple[AdapterChoice, ...] = ("auto", "none", "vision", "speech")


@dataclass(frozen=True)
class Configuration:
    label: str
    engine: Engine
    sampling: Sampling
    adapter: AdapterChoice = "auto"

    def apply(self, request: ChatRequest) -> ChatRequest:
        if self.adapter == "auto":
            return request
        return dataclasses.replace(request, adapter=None if self.adapter == "none"
                                   else self.adapter)


@dataclass(frozen=True)
class Side:
    label: str
    text: str = ""
    stats: RequestStats | None = None
    error: str | None = None
    answer_id: str | None = None

    @property
    def done(self) -> bool:
        return self.stats is not None or self.error is not None


@dataclass(frozen=True)
class Pair:
    left: Side
    right: Side
    pair_id: str

    @property
    def done(self) -> bool:
        return self.left.done and self.right.done

    def sides(self) -> tuple[Side, Side]:
        return self.left, self.right


async def compare(configurations: tuple[Configuration, Configuration],
                  history: Sequence[Mapping[str, Any]], message: Mapping[str, Any] | str,
                  system: str, *, store: Store | None = None, user: str = ""
                  ) -> AsyncIterator[Pair]:
    """The pair after every update of either side; the last one has both recorded.
    Stopping the iteration aborts both answers."""
    pair_id = uuid.uuid4().hex
    sides = [Side(c.label) for c in configurations]
    requests: list[ChatRequest | None] = [None, None]

    async def run(index: int) -> AsyncIterator[tuple[int, Side]]:
        config = configurations[index]
        try:
            request = config.apply(await answer_stream.plan(config.engine, history, message, system,
                                                      config.sampling))
            requests[index] = request
            async for update in answer_stream.answer(config.engine, request):
                yield index, Side(config.label, update.text, update.stats)
        except Phi4UIError as error:
            yield index, Side(config.label, error=str(error))
        except Exception as error:
            log.exception("side-by-side answer %s failed", config.label)
            yield index, Side(config.label, error=f"internal error ({error})")

    async with contextlib.aclosing(merged([run(0), run(1)])) as updates:
        async for index, side in updates:
            sides[index] = side
            yield Pair(sides[0], sides[1], pair_id)
    if store is not None:
        sides = await _record_both(configurations, requests, sides, pair_id, store, user)
        yield Pair(sides[0], sides[1], pair_id)


async def _record_both(configurations: Sequence[Configuration],
                       requests: Sequence[ChatRequest | None], sides: list[Side], pair_id: str,
                       store: Store, user: str) -> list[Side]:
    recorded = list(sides)
    for index, (config, request, side) in enumerate(zip(configurations, requests, sides,
                                                        strict=True)):
        if request is None or side.stats is None or side.error:
            continue
        try:
            done = await record(store, request, side.text, side.stats, config.engine.info,
                                origin="side-by-side", pair_id=pair_id, user=user)
        except Phi4UIError as error:
            recorded[index] = dataclasses.replace(side, error=str(error))
            continue
        recorded[index] = dataclasses.replace(side, answer_id=done.answer_id)
    return recorded


async def vote(store: Store, pair: Pair, winner: Winner, comment: str = "") -> None:
    """Stores the vote as a rating on both answers; raises `RecordNotFound` when either
    answer was not recorded."""
    left, right = pair.left.answer_id, pair.right.answer_id
    if not left or not right:
        raise BadInput("Both answers must be finished and recorded before a vote.")
    await asyncio.to_thread(store.vote, left, right, winner, comment)
