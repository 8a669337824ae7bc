"""The embedded engine keeps its answers' prompt token ids out of the garbage collector's walks,
from the request's arrival on (see `phi4ui/core/untracked.py`)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from phi4ui.core.engine import TextDelta
from tests.support.enginehelpers import plan

pytestmark = pytest.mark.engine


def test_answers_in_flight_keep_their_prompts_out_of_the_walks(embedded_engine: Any,
                                                               engine_loop: Any) -> None:
    request = plan(engine_loop, embedded_engine, "Tell me a long story about a lighthouse.")

    async def prompts_while_streaming() -> list[Any]:
        seen: list[Any] = []
        deltas = 0
        async for event in embedded_engine.stream(request):
            deltas += isinstance(event, TextDelta)
            if deltas == 2 and not seen:
                states = embedded_engine.vllm_engine.output_processor.request_states
                seen = [state.prompt_token_ids for state in states.values()]
        return seen

    prompts = engine_loop.run(prompts_while_streaming())

    assert len(prompts) == 1
    assert type(prompts[0]) is list and len(prompts[0]) == request.tokens.total
    assert not gc.is_tracked(prompts[0])


def test_a_queued_answer_keeps_its_prompt_out_of_the_walks_before_its_first_token(
        embedded_engine: Any, engine_loop: Any) -> None:
    """Under load an answer waits seconds for its first token; its prompt is left out of
    the walks from the moment the engine's front end holds it."""
    request = plan(engine_loop, embedded_engine, "Describe a quiet harbour at dawn.")

    async def prompt_on_arrival() -> tuple[Any, bool, bool, int]:
        states = embedded_engine.vllm_engine.output_processor.request_states
        deltas = 0

        async def answer() -> None:
            nonlocal deltas
            async for event in embedded_engine.stream(request):
                deltas += isinstance(event, TextDelta)

        answering = asyncio.create_task(answer())
        while not states and not answering.done():
            await asyncio.sleep(0)
        state = next(iter(states.values()))
        prompt, prefilling = state.prompt_token_ids, state.is_prefilling
        tracked = gc.is_tracked(prompt)
        seen_deltas = deltas
        await answering
        return prompt, tracked, prefilling, seen_deltas

    prompt, tracked, prefilling, deltas_before = engine_loop.run(prompt_on_arrival())

    assert prefilling and deltas_before == 0, "looked at before the first token"
    assert type(prompt) is list and len(prompt) == request.tokens.total
    assert not tracked

