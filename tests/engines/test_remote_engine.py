"""The remote engine against a real vLLM OpenAI-compatible server on 127.0.0.1.

The tests' shared server (`vllm_server` in conftest.py), serving the tiny
random-weight checkpoint with its adapters registered as `vision` and `speech`;
the last test kills it mid-answer and starts it again. Random weights make the words noise:
these tests check structure, token counts, the adapter the server ran, the
statistics, stop/abort and the failures a person can meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from phi4ui.core import answer_stream
from phi4ui.core.chat import ChatRequest, Sampling, TokenCount, Turn
from phi4ui.core.engine import Finished, TextDelta
from phi4ui.engines import prometheus
from phi4ui.engines.openai_wire import display_url
from phi4ui.engines.remote import RemoteEngine
from phi4ui.errors import EngineUnavailable, PromptTooLong
from phi4ui.settings import load_settings
from tests.support.enginehelpers import FIXED, collect, plan
from tests.support.mediafiles import write_audio, write_image
from tests.support.vllm_server import MAX_NUM_SEQS, STREAM_INTERVAL, VllmServer, free_port

pytestmark = pytest.mark.engine
ENDLESS = Sampling(temperature=0.0, max_tokens=2000, ignore_eos=True)
SECRET = "sk-test-key-that-must-stay-hidden"


def remote_settings(base_url: str, *extra: str) -> Any:
    return load_settings(["--engine", "remote", "--base-url", base_url, "--max-images", "2",
                          "--max-audios", "2", "--dynamic-hd", "4", "--request-timeout", "300",
                          *extra], environ={})


@pytest.fixture(scope="module")
def remote_engine(vllm_server: VllmServer, engine_loop: Any) -> Iterator[RemoteEngine]:
    engine = RemoteEngine(remote_settings(vllm_server.base_url, "--api-key", SECRET))
    engine_loop.run(engine.start())
    assert engine.status.state == "ready", engine.status.message
    yield engine
    engine_loop.run(engine.close())


def scrape(server: VllmServer) -> prometheus.Scrape:
    return prometheus.parse(server.metrics())


@pytest.fixture()
def media(tmp_path):
    return {"image": str(write_image(tmp_path, "scene.png", size=(640, 480))),
            "audio": str(write_audio(tmp_path, "speech.wav", seconds=2.0, rate=44_100))}


def test_start_reads_the_server(remote_engine, vllm_server):
    info = remote_engine.info
    assert info.kind == "remote" and info.model == str(vllm_server.checkpoint)
    assert info.max_model_len == remote_engine.prompt_limits.max_model_len == 4096
    assert set(info.adapters) == {"vision", "speech"}
    assert info.random_weights and info.warnings == ()
    assert SECRET not in repr(info) and SECRET not in remote_engine.status.message


@pytest.mark.parametrize(
    ("kinds", "adapter"),
    [((), None), (("image",), "vision"), (("audio",), "speech"), (("image", "audio"), "vision")],
)
def test_streams_each_modality_with_its_adapter(remote_engine, vllm_server, engine_loop, media,
                                                kinds, adapter):
    message = {"text": "Describe what you get.", "files": [media[k] for k in kinds]}
    request = plan(engine_loop, remote_engine, message)
    assert request.adapter == adapter
    before = scrape(vllm_server)

    deltas, stats = engine_loop.run(collect(remote_engine, request))

    assert len(deltas) > 1, "the answer must arrive in several deltas"
    assert sum(d.tokens for d in deltas) == stats.completion_tokens == FIXED.max_tokens
    assert [d.last for d in deltas] == [False] * (len(deltas) - 1) + [True]
    # The server's prompt is exactly what the planner counted: text plus the
    # placeholder expansion of every image and clip.
    assert stats.prompt_tokens == request.tokens.total
    assert stats.prompt_image_tokens == sum(i.tokens for i in request.images)
    assert stats.prompt_audio_tokens == sum(a.tokens for a in request.audios)
    assert stats.adapter == adapter
    # The server's scheduler reports which adapters ran.
    ran = prometheus.adapters_between(before, scrape(vllm_server))
    assert ran == ((adapter,) if adapter else ())
    assert stats.snapshot.running_adapters == ran


def test_statistics_are_present_and_consistent(remote_engine, engine_loop):
    request = plan(engine_loop, remote_engine, "Count to ten.")
    _, stats = engine_loop.run(collect(remote_engine, request))
    assert stats.engine == "remote" and stats.finish_reason == "length"
    assert 0 < stats.ttft_s < stats.e2e_s
    assert stats.decode_tokens_per_s and stats.decode_tokens_per_s > 0
    assert 0 < stats.itl_p50_s <= stats.itl_p95_s
    # The server's own view, from the growth of its histograms over this request.
    assert stats.queue_s is not None and stats.prefill_s is not None and stats.decode_s
    assert stats.queue_s + stats.prefill_s + stats.decode_s <= stats.e2e_s
    snapshot = stats.snapshot
    assert snapshot is not None and 0 <= snapshot.kv_cache_usage <= 1
    assert snapshot.running == 0 and snapshot.waiting == 0
    assert snapshot.generation_tokens_total >= FIXED.max_tokens and snapshot.process_memory > 0
    assert stats.missing == ("device memory",)
    assert stats.summary() and "Not reported by this engine: device memory" in stats.details()


def test_a_lone_answer_just_after_a_look_at_the_idle_server_scrapes_only_after_its_text(
        remote_engine, engine_loop):
    # The engine panel reads the server's /metrics every 2 s while a page is open; each read
    # has the server render them while it makes the answer's tokens. A read of the idle
    # server just before the answer serves as the answer's "before".
    request = plan(engine_loop, remote_engine, "Count to ten.")

    async def answer() -> tuple[int, Any]:
        await remote_engine.snapshot()
        scrapes_before = remote_engine.metrics_scrapes
        while_streaming, stats = 0, None
        async for event in remote_engine.stream(request):
            if isinstance(event, TextDelta):
                while_streaming = remote_engine.metrics_scrapes - scrapes_before
            elif isinstance(event, Finished):
                stats = event.stats
        return while_streaming, stats

    while_streaming, stats = engine_loop.run(answer())
    assert while_streaming == 0
    assert stats.queue_s is not None and stats.prefill_s is not None and stats.decode_s
    assert stats.missing == ("device memory",)


def test_a_server_s_stream_interval_brings_several_tokens_per_chunk(remote_engine, engine_loop):
    request = plan(engine_loop, remote_engine, "Count to ten.")
    deltas, stats = engine_loop.run(collect(remote_engine, request))
    counts = [delta.tokens for delta in deltas]
    assert sum(counts) == stats.completion_tokens == FIXED.max_tokens
    assert counts[0] == 1 and max(counts) == STREAM_INTERVAL
    assert len(counts) <= 1 + -(-(FIXED.max_tokens - 1) // STREAM_INTERVAL)
    assert 0 < stats.itl_p50_s <= stats.itl_p95_s  # a chunk's gap is spread over its tokens


def test_answers_at_once_share_the_server_s_metrics_scrapes(remote_engine, engine_loop):
    # Each answer used to fetch and parse /metrics at least twice (after its first token
    # and after its end): with many people that load fell on the server (which renders
    # them) and on the page process, per answer. Answers that share the server cannot have
    # their own timings told apart, so they share the scrapes too.
    requests = [plan(engine_loop, remote_engine, f"Question {n}.") for n in range(8)]

    async def one_after_another(delay_s: float):
        async def started_after(n: int, request: ChatRequest):
            await asyncio.sleep(n * delay_s)
            return await collect(remote_engine, request)
        return await asyncio.gather(*(started_after(n, r) for n, r in enumerate(requests)))

    scrapes_before = remote_engine.metrics_scrapes
    answers = engine_loop.run(one_after_another(0.05))
    scrapes = remote_engine.metrics_scrapes - scrapes_before
    assert scrapes <= len(requests) // 2, f"{scrapes} scrapes for {len(requests)} answers"
    for _, stats in answers:
        assert stats.completion_tokens == FIXED.max_tokens
        assert stats.snapshot is not None and stats.snapshot.kv_cache_usage is not None
        assert stats.queue_s is None and "queue time" in stats.missing  # not told apart


def test_a_lone_answer_after_answers_at_once_and_a_stop_has_its_own_timings(remote_engine,
                                                                          engine_loop):
    """The count of answers sharing the server comes back to none on every path."""
    request = plan(engine_loop, remote_engine, "Go on.", ENDLESS)

    async def stopped_after_one_update():
        async for _ in answer_stream.answer(remote_engine, request, interval_s=0):
            break

    async def broken_off_at_the_first_delta():
        async with contextlib.aclosing(remote_engine.stream(request)) as events:
            async for _ in events:
                break

    engine_loop.run(stopped_after_one_update())
    engine_loop.run(broken_off_at_the_first_delta())
    wait_until_idle(remote_engine, engine_loop)
    _, stats = engine_loop.run(collect(remote_engine, plan(engine_loop, remote_engine, "Hi.")))
    assert stats.queue_s is not None and stats.prefill_s is not None and stats.decode_s
    assert stats.missing == ("device memory",)


def test_an_answer_sent_just_after_another_page_process_s_has_its_own_timings(
        remote_engine, vllm_server, engine_loop):
    # With several page processes (`--frontends`) each reads the server's /metrics for its
    # health checks and engine panel, and sees the others' answers there: a read that showed
    # the server busy a moment ago does not mean that it still is.
    request = plan(engine_loop, remote_engine, "Count to ten.")
    other_page = openai.AsyncOpenAI(base_url=vllm_server.base_url, api_key="EMPTY",
                                    max_retries=0)

    async def after_another_page_process_s_answer() -> tuple[int | None, Any]:
        seen_running = None
        chunks = await other_page.chat.completions.create(
            model=remote_engine.info.model, messages=[{"role": "user", "content": "Go on."}],
            stream=True, max_tokens=48, temperature=0.0, extra_body={"ignore_eos": True})
        async for _ in chunks:
            if seen_running is None:  # this page process's health check, meanwhile
                seen_running = (await remote_engine.snapshot()).running
        await other_page.close()
        _, stats = await collect(remote_engine, request)
        return seen_running, stats

    seen_running, stats = engine_loop.run(after_another_page_process_s_answer())
    assert seen_running == 1
    assert stats.queue_s is not None and stats.prefill_s is not None and stats.decode_s
    assert stats.missing == ("device memory",)


def test_stopping_an_answer_aborts_the_server_request(remote_engine, vllm_server, engine_loop):
    longest = Sampling(temperature=0.0, max_tokens=4000, ignore_eos=True)
    request = plan(engine_loop, remote_engine, "Go on forever.", longest)
    generated_before = scrape(vllm_server).total(prometheus.GENERATION_TOKENS)

    async def stop_after_three_updates():
        seen = 0
        async for _ in answer_stream.answer(remote_engine, request, interval_s=0):
            seen += 1
            if seen == 3:
                break
        return seen

    assert engine_loop.run(stop_after_three_updates()) == 3
    wait_until_idle(remote_engine, engine_loop)
    # The server stopped generating: it did not run the request to its end.
    generated = scrape(vllm_server).total(prometheus.GENERATION_TOKENS) - generated_before
    assert generated < longest.max_tokens / 2


def test_a_cancelled_consumer_aborts_too(remote_engine, engine_loop):
    request = plan(engine_loop, remote_engine, "Keep going.", ENDLESS)

    async def cancel_mid_answer():
        task = asyncio.ensure_future(collect(remote_engine, request))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    engine_loop.run(cancel_mid_answer())
    wait_until_idle(remote_engine, engine_loop)


def wait_until_idle(engine, engine_loop, seconds=10.0):
    deadline = time.monotonic() + seconds
    while engine_loop.run(engine.snapshot()).running != 0:
        assert time.monotonic() < deadline, "the stopped request is still running on the server"
        time.sleep(0.05)


def test_a_prompt_too_long_for_the_server_is_bad_input(remote_engine, engine_loop):
    # Past the planner, as a prompt whose size was underestimated would be.
    request = ChatRequest(system="", turns=(Turn("user", ("lorem ipsum " * 3000,)),),
                          sampling=FIXED, adapter=None, tokens=TokenCount(text=100))
    with pytest.raises(PromptTooLong) as refused:
        engine_loop.run(collect(remote_engine, request))
    message = str(refused.value)
    assert "maximum context length is 4096 tokens" in message
    assert "Error code" not in message and "parameter=" not in message
    assert remote_engine.status.state == "ready"


def test_a_server_that_is_down_at_start_fails_in_one_line(engine_loop, caplog):
    port = free_port()
    engine = RemoteEngine(remote_settings(f"http://127.0.0.1:{port}/v1", "--api-key", SECRET))
    with caplog.at_level(logging.DEBUG):
        engine_loop.run(engine.start())
    assert engine.status.state == "failed"
    assert engine.status.message == f"cannot reach http://127.0.0.1:{port}/v1: connection refused"
    # A request checks again first, and says the same in a sentence.
    request = ChatRequest(system="", turns=(Turn("user", ("hi",)),), sampling=FIXED,
                          adapter=None, tokens=TokenCount(text=5))
    with pytest.raises(EngineUnavailable, match="connection refused"):
        engine_loop.run(collect(engine, request))
    engine_loop.run(engine.close())
    assert SECRET not in caplog.text


def test_a_model_the_server_does_not_serve_fails_in_one_line(vllm_server, engine_loop):
    engine = RemoteEngine(remote_settings(vllm_server.base_url, "--remote-model", "phi-5"))
    engine_loop.run(engine.start())
    engine_loop.run(engine.close())
    assert engine.status.state == "failed"
    assert engine.status.message == (
        f"{vllm_server.base_url} does not serve 'phi-5' (it lists {vllm_server.checkpoint}, "
        "vision, speech); check --remote-model")


def test_the_shown_address_hides_credentials():
    assert display_url("https://user:pw@example.org:8443/v1?key=x") == "https://example.org:8443/v1"


def test_a_server_killed_mid_answer_then_restarted(remote_engine, killable_vllm_server,
                                                   engine_loop):
    vllm_server = killable_vllm_server
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    kept = copy.deepcopy(history)
    request = plan(engine_loop, remote_engine, "Tell a long story.", ENDLESS, history)

    events: list[Any] = []

    async def kill_after_three_deltas():
        async for event in remote_engine.stream(request):
            events.append(event)
            if len(events) == 3:
                await asyncio.to_thread(vllm_server.kill)

    with pytest.raises(EngineUnavailable) as lost:
        engine_loop.run(kill_after_three_deltas())
        pytest.fail(f"the answer ended normally after the kill: {events[-1]!r}")
    message = str(lost.value)
    assert message.startswith(f"Lost the connection to the server at {vllm_server.base_url}")
    assert "send again once the server is back" in message and "\n" not in message
    assert remote_engine.status.state == "failed"

    vllm_server.start()
    # The page's retry plans the kept conversation again.
    assert history == kept
    retry = plan(engine_loop, remote_engine, "Tell a long story.", FIXED, history)
    deltas, stats = engine_loop.run(collect(remote_engine, retry))
    assert remote_engine.status.state == "ready"
    assert stats.completion_tokens == FIXED.max_tokens and len(deltas) > 1


def test_a_server_that_is_too_slow_times_out(remote_engine, vllm_server, engine_loop):
    """A server that sends nothing for `--request-timeout`: here every answer it can run at
    once is taken by a long one, so that a new request waits in its queue. (A picture it
    had not seen kept its vision encoder busy for seconds on the earlier test machines,
    but for less than the second on a faster one.)"""
    engine = RemoteEngine(remote_settings(vllm_server.base_url, "--request-timeout", "1"))
    engine_loop.run(engine.start())
    long_answer = plan(engine_loop, remote_engine, "Go on forever.", ENDLESS)
    request = plan(engine_loop, engine, "What is this?")

    async def while_the_server_is_full() -> None:
        begun = asyncio.Semaphore(0)

        async def take_a_place() -> None:
            first = True
            async for event in remote_engine.stream(long_answer):  # until cancelled
                if first and isinstance(event, TextDelta):
                    begun.release()
                    first = False

        async def everyone_begun() -> None:
            for _ in range(MAX_NUM_SEQS):
                await begun.acquire()

        places = [asyncio.ensure_future(take_a_place()) for _ in range(MAX_NUM_SEQS)]
        try:
            await asyncio.wait_for(everyone_begun(), 120)
            with pytest.raises(EngineUnavailable, match="sent nothing for 1 s"):
                await collect(engine, request)
        finally:
            for place in places:
                place.cancel()
            await asyncio.gather(*places, return_exceptions=True)

    try:
        engine_loop.run(while_the_server_is_full())
        assert engine.status.state == "ready"
    finally:
        engine_loop.run(engine.close())
    wait_until_idle(remote_engine, engine_loop)
