"""What the embedded and remote engine tests share: planning a message and reading a stream."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from phi4ui.core import answer_stream
from phi4ui.core.chat import ChatRequest, Sampling
from phi4ui.core.engine import Engine, Finished, TextDelta
from phi4ui.core.stats import RequestStats

FIXED = Sampling(temperature=0.0, max_tokens=24, ignore_eos=True)


async def collect(engine: Engine, request: ChatRequest) -> tuple[list[TextDelta], RequestStats]:
    """The whole answer: its deltas and its statistics."""
    deltas: list[TextDelta] = []
    finished: Finished | None = None
    async for event in engine.stream(request):
        if isinstance(event, TextDelta):
            deltas.append(event)
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None, "the stream ended without its statistics"
    return deltas, finished.stats


def plan(engine_loop: Any, engine: Engine, message: Any, sampling: Sampling = FIXED,
         history: Sequence[Any] = ()) -> ChatRequest:
    planned = answer_stream.plan(engine, list(history), message, "Be brief.", sampling)
    return engine_loop.run(planned)
