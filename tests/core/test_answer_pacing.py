"""How `answer_stream.answer` turns an engine's stream into page updates: the stream is
read as it comes, each update carries everything new, and closing the updates ends the
engine's stream. The engine here is a scripted stream of events (the pacing is ours;
the real engines' streams are tested in tests/engines)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from phi4ui.core import answer_stream
from phi4ui.core.answer_stream import UpdatePacer
from phi4ui.core.engine import Event, Finished, TextDelta
from phi4ui.core.stats import StatsRecorder
from phi4ui.errors import EngineUnavailable
from tests.support.evalhelpers import request_with, stats_for

REQUEST = request_with("hello")


class ScriptedEngine:
    """Yields `tokens` one-token deltas, `gap_s` apart, then a Finished (or `fails`)
    `stats_after_s` later, as an engine that reads the server's metrics after the text."""

    def __init__(self, tokens: int, gap_s: float = 0.0, fails: Exception | None = None,
                 stats_after_s: float = 0.0) -> None:
        self.tokens, self.gap_s, self.fails = tokens, gap_s, fails
        self.stats_after_s = stats_after_s
        self.read = 0
        self.closed = False

    async def stream(self, request: object) -> AsyncIterator[Event]:
        try:
            for index in range(self.tokens):
                await asyncio.sleep(self.gap_s)
                self.read += 1
                yield TextDelta(f"t{index} ", 1, last=index == self.tokens - 1)
            if self.fails is not None:
                raise self.fails
            await asyncio.sleep(self.stats_after_s)
            yield Finished(stats_for(REQUEST, self.tokens))
        finally:
            self.closed = True


async def updates_of(engine: ScriptedEngine, consumer_delay_s: float,
                     pacer: UpdatePacer | None = None) -> list[answer_stream.AnswerUpdate]:
    seen = []
    async for update in answer_stream.answer(engine, REQUEST, pacer=pacer or UpdatePacer()):
        seen.append(update)
        await asyncio.sleep(consumer_delay_s)  # a web server busy sending the update
    return seen


def test_a_slow_reader_gets_few_updates_each_with_all_the_text_so_far() -> None:
    # Sending an update takes longer than the spacing asked for, as with many people at once.
    engine = ScriptedEngine(tokens=200, gap_s=0.001)
    seen = asyncio.run(updates_of(engine, consumer_delay_s=0.05,
                                  pacer=UpdatePacer(min_interval_s=0.03)))
    full = "".join(f"t{i} " for i in range(200))
    assert seen[-1].done and seen[-1].text == full
    # One update per token would be 201; the stream was drained while updates were sent.
    assert len(seen) <= 40
    texts = [u.text for u in seen]
    assert all(full.startswith(t) for t in texts)
    assert texts == sorted(texts, key=len)


def test_the_first_text_is_not_held_back() -> None:
    async def first_update_after() -> tuple[float, str]:
        engine = ScriptedEngine(tokens=50, gap_s=0.005)
        started = asyncio.get_running_loop().time()
        updates = answer_stream.answer(engine, REQUEST, interval_s=10.0)
        first = await anext(updates)
        took = asyncio.get_running_loop().time() - started
        await updates.aclose()
        return took, first.text

    took, text = asyncio.run(first_update_after())
    assert text.startswith("t0 ")
    assert took < 1.0  # the 10 s spacing applies only after the first update


def test_the_answer_ends_without_waiting_out_the_spacing() -> None:
    async def run() -> tuple[float, list[answer_stream.AnswerUpdate]]:
        engine = ScriptedEngine(tokens=3, gap_s=0.01)
        started = asyncio.get_running_loop().time()
        seen = [u async for u in answer_stream.answer(engine, REQUEST, interval_s=30.0)]
        return asyncio.get_running_loop().time() - started, seen

    took, seen = asyncio.run(run())
    assert seen[-1].done and seen[-1].text == "t0 t1 t2 "
    assert took < 10.0


def test_the_last_text_is_sent_at_once_before_the_statistics() -> None:
    async def run() -> list[tuple[float, answer_stream.AnswerUpdate]]:
        # The spacing would hold the last tokens back 10 s, the statistics come 2 s after.
        engine = ScriptedEngine(tokens=3, gap_s=0.01, stats_after_s=2.0)
        started = asyncio.get_running_loop().time()
        return [(asyncio.get_running_loop().time() - started, update)
                async for update in answer_stream.answer(engine, REQUEST, interval_s=10.0)]

    seen = asyncio.run(run())
    complete = [(at, u) for at, u in seen if u.text == "t0 t1 t2 "]
    at, first_complete = complete[0]
    assert not first_complete.done and at < 1.0
    assert seen[-1][1].done and seen[-1][0] >= 2.0


def test_closing_the_updates_ends_the_engine_stream_midway() -> None:
    engine = ScriptedEngine(tokens=10_000, gap_s=0.001)

    async def stop_after_two() -> None:
        updates = answer_stream.answer(engine, REQUEST, pacer=UpdatePacer())
        await anext(updates)
        await anext(updates)
        await updates.aclose()

    asyncio.run(stop_after_two())
    assert engine.closed
    assert engine.read < 10_000


def test_an_engine_failure_reaches_the_reader_after_the_text_so_far() -> None:
    engine = ScriptedEngine(tokens=5, fails=EngineUnavailable("The engine stopped."))
    with pytest.raises(EngineUnavailable, match="engine stopped"):
        asyncio.run(updates_of(engine, consumer_delay_s=0.0))
    assert engine.closed


def test_tokens_are_counted_as_they_arrive_even_between_updates() -> None:
    progress = StatsRecorder()

    async def run() -> None:
        engine = ScriptedEngine(tokens=40)
        async for _ in answer_stream.answer(engine, REQUEST, interval_s=10.0,
                                            progress=progress):
            pass

    asyncio.run(run())
    stats = progress.finish(engine="x", adapter=None, finish_reason="stopped", prompt_tokens=1,
                            prompt_text_tokens=1, prompt_image_tokens=0, prompt_audio_tokens=0)
    assert stats.completion_tokens == 40


@pytest.mark.parametrize(("active", "expected"), [(1, 0.03), (20, 0.05), (64, 0.1), (1000, 0.1)])
def test_updates_spread_out_with_many_answers_but_never_more_than_100_ms_apart(
        active: int, expected: float) -> None:
    pacer = UpdatePacer(min_interval_s=0.03, max_interval_s=0.1, max_updates_per_s=400)
    pacer.active = active
    assert pacer.interval() == pytest.approx(expected)
