"""The embedded engine on a real vLLM AsyncLLM running the tiny random-weight checkpoint.

Random weights make the words noise: these tests check structure, token counts,
the adapter vLLM ran, stop/abort and the statistics.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from phi4ui.core import answer_stream
from phi4ui.core.chat import Sampling
from phi4ui.core.engine import TextDelta
from phi4ui.core.stats import StatsRecorder
from tests.support.enginehelpers import FIXED, collect, plan
from tests.support.mediafiles import write_audio, write_image

pytestmark = pytest.mark.engine


@pytest.fixture()
def media(tmp_path):
    return {"image": str(write_image(tmp_path, "scene.png", size=(640, 480))),
            "audio": str(write_audio(tmp_path, "speech.wav", seconds=2.0, rate=44_100))}


@pytest.mark.parametrize(
    ("kinds", "adapter"),
    [((), None), (("image",), "vision"), (("audio",), "speech"), (("image", "audio"), "vision")],
)
def test_streams_each_modality_with_its_adapter(embedded_engine, engine_loop, media, kinds,
                                                adapter):
    message = {"text": "Describe what you get.", "files": [media[k] for k in kinds]}
    request = plan(engine_loop, embedded_engine, message)
    assert request.adapter == adapter
    steps_before = embedded_engine.adapter_steps()

    deltas, stats = engine_loop.run(collect(embedded_engine, request))

    assert len(deltas) > 1, "the answer must arrive in several deltas"
    assert sum(d.tokens for d in deltas) == stats.completion_tokens == FIXED.max_tokens
    assert [d.last for d in deltas] == [False] * (len(deltas) - 1) + [True]
    # The engine's prompt is exactly what the planner counted: text plus the
    # placeholder expansion of every image and clip.
    assert stats.prompt_tokens == request.tokens.total
    assert stats.prompt_image_tokens == sum(i.tokens for i in request.images)
    assert stats.prompt_audio_tokens == sum(a.tokens for a in request.audios)
    assert stats.adapter == adapter
    steps_after = embedded_engine.adapter_steps()
    ran = {name for name in steps_after if steps_after[name] > steps_before.get(name, 0)}
    assert ran == ({adapter} if adapter else set())


def test_statistics_are_present_and_consistent(embedded_engine, engine_loop):
    request = plan(engine_loop, embedded_engine, "Count to ten.")
    _, stats = engine_loop.run(collect(embedded_engine, request))
    assert 0 < stats.ttft_s < stats.e2e_s
    assert stats.decode_tokens_per_s and stats.decode_tokens_per_s > 0
    assert 0 < stats.itl_p50_s <= stats.itl_p95_s
    assert stats.queue_s is not None and stats.prefill_s is not None and stats.decode_s
    assert stats.queue_s + stats.prefill_s + stats.decode_s <= stats.e2e_s
    assert stats.finish_reason == "length"
    snapshot = stats.snapshot
    assert snapshot is not None and 0 <= snapshot.kv_cache_usage <= 1
    assert snapshot.device_memory_used > 0 and snapshot.process_memory > 0
    assert stats.summary() and "Time to first token" in stats.details()


def test_vllm_s_prometheus_metrics_are_not_kept(embedded_engine, engine_loop):
    # Nothing reads them in the app; the engine's own figures come from its snapshot sink.
    from prometheus_client import REGISTRY

    engine_loop.run(collect(embedded_engine, plan(engine_loop, embedded_engine, "Hello.")))
    assert not [m.name for m in REGISTRY.collect() if m.name.startswith("vllm:")]


def test_several_requests_are_batched_together(embedded_engine, engine_loop):
    requests = [plan(engine_loop, embedded_engine, f"Question {i}") for i in range(4)]

    async def all_at_once():
        return await asyncio.gather(*(collect(embedded_engine, r) for r in requests))

    results = engine_loop.run(all_at_once())
    assert all(stats.completion_tokens == FIXED.max_tokens for _, stats in results)


def test_stopping_an_answer_aborts_the_engine_request(embedded_engine, engine_loop):
    request = plan(engine_loop, embedded_engine, "Go on forever.",
                   Sampling(temperature=0.0, max_tokens=2000, ignore_eos=True))

    progress = StatsRecorder()

    async def stop_after_three_deltas():
        seen = 0
        running_while_streaming = None
        async for _ in answer_stream.answer(embedded_engine, request, interval_s=0,
                                      progress=progress):
            seen += 1
            if seen == 3:
                running_while_streaming = (await embedded_engine.snapshot()).running
                break
        return running_while_streaming

    assert engine_loop.run(stop_after_three_deltas()) == 1
    # How far it got, as the page shows it under a stopped answer.
    stopped = answer_stream.stopped_stats(embedded_engine, request, progress)
    assert stopped.finish_reason == "stopped"
    assert 3 <= stopped.completion_tokens < 2000
    assert stopped.ttft_s is not None and stopped.ttft_s <= stopped.e2e_s
    assert stopped.prompt_tokens == request.tokens.total
    assert stopped.queue_s is None and stopped.missing
    deadline = time.monotonic() + 10
    while engine_loop.run(embedded_engine.snapshot()).running != 0:
        assert time.monotonic() < deadline, "the aborted request is still running"
        time.sleep(0.05)
    # The scheduler itself dropped it: while a new request runs, it counts only that one.
    follow_up = plan(engine_loop, embedded_engine, "hi",
                     Sampling(temperature=0.0, max_tokens=8, ignore_eos=True))

    async def running_counts():
        counts = []
        async for event in embedded_engine.stream(follow_up):
            if isinstance(event, TextDelta):
                counts.append((await embedded_engine.snapshot()).running)
        return counts

    assert max(engine_loop.run(running_counts())) == 1


def test_a_stop_ends_the_updates_at_once_and_aborts_the_engine_request(embedded_engine,
                                                                       engine_loop):
    """Stop (the page's signal) ends an answer that waits out a long spacing between
    updates; the engine request ends with it."""
    request = plan(engine_loop, embedded_engine, "Go on and on.",
                   Sampling(temperature=0.0, max_tokens=2000, ignore_eos=True))

    async def stop_after_the_first_update():
        stop = asyncio.Event()
        updates = []
        async for update in answer_stream.answer(embedded_engine, request, interval_s=60,
                                                 stop=stop):
            updates.append(update)
            asyncio.get_running_loop().call_later(0.2, stop.set)
        await asyncio.sleep(0.2)
        return updates, (await embedded_engine.snapshot()).running

    started = time.monotonic()
    updates, running = engine_loop.run(stop_after_the_first_update())
    assert len(updates) == 1 and updates[0].stats is None
    assert time.monotonic() - started < 30  # not the 60 s spacing
    assert running == 0


def test_a_cancelled_consumer_aborts_too(embedded_engine, engine_loop):
    request = plan(engine_loop, embedded_engine, "Keep going.",
                   Sampling(temperature=0.0, max_tokens=2000, ignore_eos=True))

    async def cancel_mid_answer():
        task = asyncio.ensure_future(collect(embedded_engine, request))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)
        return await embedded_engine.snapshot()

    assert engine_loop.run(cancel_mid_answer()).running == 0
