"""Prompt token-id lists are left out of the garbage collector's walks.

A full collection walks every reference of every tracked container; the prompts of the
answers in flight were about a third of that walk under load (docs/benchmarks.md).
"""

from __future__ import annotations

import gc
from typing import Any

import pytest

from phi4ui.core.engine import TextDelta
from phi4ui.engines.untracked_ids import untrack_token_ids
from tests.support.enginehelpers import plan


def test_a_list_of_ints_is_no_longer_tracked() -> None:
    ids = list(range(1_000, 4_000))
    assert gc.is_tracked(ids)
    assert untrack_token_ids(ids)
    assert not gc.is_tracked(ids)
    assert not untrack_token_ids(ids), "a second call finds nothing to do"
    ids.extend(range(10))  # still an ordinary list
    assert len(ids) == 3_010 and ids[-1] == 9


@pytest.mark.parametrize("value", [[1, 2, {"a": []}], [[1]], (1, 2, 3), None, "abc"])
def test_anything_that_could_hold_a_cycle_is_left_alone(value: Any) -> None:
    tracked = gc.is_tracked(value)
    assert not untrack_token_ids(value)
    assert gc.is_tracked(value) == tracked


def test_a_cycle_through_a_tracked_list_is_still_collected() -> None:
    class Node:
        pass

    node = Node()
    node.ids = [node]  # the list holds a container, so it is kept in the walks
    assert not untrack_token_ids(node.ids)
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        del node
        assert gc.collect() >= 2
        assert len(gc.get_objects()) < before
    finally:
        gc.enable()


@pytest.mark.engine
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
