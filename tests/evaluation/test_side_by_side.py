"""Side by side on the real tiny engine: two configurations stream at once, each with its
statistics, both are recorded as a pair, and a vote is stored as a rating on each."""

from __future__ import annotations

import asyncio
import time

import pytest

from phi4ui.core.chat import Sampling
from phi4ui.engines.embedded import EmbeddedEngine
from phi4ui.errors import BadInput
from phi4ui.evaluation import compare
from phi4ui.evaluation.compare import Configuration, Pair
from phi4ui.evaluation.store import Store
from tests.support.mediafiles import write_image

pytestmark = pytest.mark.engine
LONG = Sampling(temperature=0.0, max_tokens=48, ignore_eos=True)


@pytest.fixture()
def store(tmp_path):
    store = Store(tmp_path / "answers.db")
    yield store
    store.close()


async def collect(configurations, message, store=None, history=()) -> list[Pair]:
    return [pair async for pair in compare.compare(configurations, list(history), message,
                                                   "Be brief.", store=store)]


def test_two_configurations_stream_at_once_and_are_recorded_as_a_pair(
        tmp_path, store, embedded_engine, engine_loop):
    image = write_image(tmp_path, "scene.png", size=(320, 240))
    message = {"text": "Describe the picture.", "files": [str(image)]}
    configurations = (
        Configuration("adapter on", embedded_engine, LONG),
        Configuration("adapter off, hot", embedded_engine,
                      Sampling(temperature=1.0, top_p=0.9, max_tokens=48, seed=3,
                               ignore_eos=True), adapter="none"),
    )

    pairs = engine_loop.run(collect(configurations, message, store))

    first_done = next(i for i, p in enumerate(pairs) if p.left.done or p.right.done)
    before = pairs[:first_done]
    assert any(p.left.text for p in before) and any(p.right.text for p in before), \
        "both answers must be streaming before either ends"
    assert len({p.left.text for p in pairs}) > 2 and len({p.right.text for p in pairs}) > 2
    final = pairs[-1]
    assert final.done and not final.left.error and not final.right.error
    assert final.left.stats.adapter == "vision" and final.right.stats.adapter is None
    assert final.left.stats.completion_tokens == final.right.stats.completion_tokens == 48
    assert final.left.stats.ttft_s > 0 and final.right.stats.ttft_s > 0

    left, right = store.answer(final.left.answer_id), store.answer(final.right.answer_id)
    assert left.pair_id == right.pair_id == final.pair_id
    assert (left.origin, left.adapter, right.adapter) == ("side-by-side", "vision", None)
    assert (left.sampling["temperature"], right.sampling["temperature"]) == (0.0, 1.0)
    assert left.answer == final.left.text and right.answer == final.right.text

    engine_loop.run(compare.vote(store, final, "right", "more detail"))
    [on_left], [on_right] = store.ratings(left.id), store.ratings(right.id)
    assert (on_left.score, on_left.versus_id) == (-1, right.id)
    assert (on_right.score, on_right.comment) == (1, "more detail")


def test_a_side_that_fails_shows_its_error_and_the_other_still_answers(
        store, embedded_engine, engine_settings, engine_loop):
    not_started = EmbeddedEngine(engine_settings)  # loading: it refuses requests
    configurations = (Configuration("ready", embedded_engine, LONG),
                      Configuration("still loading", not_started, LONG))

    pairs = engine_loop.run(collect(configurations, "Hello?", store))

    final = pairs[-1]
    assert final.right.error.startswith("The model is still loading")
    assert final.left.stats.completion_tokens == 48 and final.left.answer_id
    assert final.right.answer_id is None
    with pytest.raises(BadInput, match="Both answers must be finished and recorded"):
        engine_loop.run(compare.vote(store, final, "left"))


def test_stopping_the_comparison_aborts_both_answers(embedded_engine, engine_loop):
    endless = Sampling(temperature=0.0, max_tokens=2000, ignore_eos=True)
    configurations = (Configuration("a", embedded_engine, endless),
                      Configuration("b", embedded_engine, endless, adapter="vision"))

    async def stop_early() -> int | None:
        stream = compare.compare(configurations, [], "Go on.", "")
        async for pair in stream:
            if pair.left.text and pair.right.text:
                running = (await embedded_engine.snapshot()).running
                break
        await stream.aclose()
        return running

    assert engine_loop.run(stop_early()) == 2
    engine_loop.run(_wait_idle(embedded_engine))


async def _wait_idle(engine, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while (await engine.snapshot()).running:
        assert time.monotonic() < deadline, "the stopped answers are still running"
        await asyncio.sleep(0.05)
