"""The server's view of an answer (`remote_metrics`) with the server's `/metrics` played by
the test: the text vLLM renders at each moment of a conversation, read through a real HTTP
client. With several page processes in front of one server (`--frontends`), each reads the
server's gauges for its health checks and engine panel, and sees the others' requests there.

The engine tests read the real text from a running server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pytest

from phi4ui.core.stats import RequestStats, StatsRecorder
from phi4ui.engines import openai_wire as wire
from phi4ui.engines.remote_metrics import ServerView
from tests.engines.test_prometheus import metrics

T = TypeVar("T")
PROMPT, COMPLETION = 14, 16
# What each request adds to the histogram sums: queue, prefill and decode time, prompt and
# generation tokens. Every request has the answers' token counts: only the counts of
# finished requests tell them apart.
ONE = (0.25, 0.75, 1.5, PROMPT, COMPLETION)
OWN_TIMINGS = pytest.approx(ONE[:3])
NO_TIMINGS = ("queue time", "prefill time", "decode time", "device memory")


def server_after(finished: int, *, running: int = 0, waiting: int = 0) -> str:
    """The server's /metrics once `finished` requests have finished."""
    return metrics(finished=finished, sums=tuple(finished * each for each in ONE),
                   running=running, waiting=waiting, kv=0.1 * running)


class Metrics:
    """The server's /metrics now, as the test sets it."""

    def __init__(self) -> None:
        self.text = server_after(0)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/metrics"
        return httpx.Response(200, text=self.text)


def conversation(talk: Callable[[ServerView, Metrics], Awaitable[T]]) -> T:
    """`talk` run with one page process's view of the server."""
    server = Metrics()

    async def run() -> T:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server),
                                     base_url="http://server") as http:
            return await talk(ServerView(http), server)

    return asyncio.run(run())


async def answer(view: ServerView, server: Metrics, *, at_first_token: str,
                 at_end: str) -> RequestStats:
    """One answer, as the remote engine streams it: sent, its first token (the server then
    shows `at_first_token`), its end (`at_end`); its statistics with the server's view."""
    recorder = StatsRecorder()
    before = view.before()
    try:
        server.text = at_first_token
        recorder.tokens(1)
        before.first_token(view)
        if before.fresh is not None:  # the scrape at the first token reads the server now
            await before.fresh
        recorder.tokens(COMPLETION - 1)
        server.text = at_end
        progress = wire.StreamProgress()
        progress.prompt_tokens, progress.completion_tokens = PROMPT, COMPLETION
        progress.finish_reason, progress.finished_at = "length", time.monotonic()
        stats = recorder.finish(engine="remote", adapter=None, finish_reason="length",
                                prompt_tokens=PROMPT, prompt_text_tokens=PROMPT,
                                prompt_image_tokens=0, prompt_audio_tokens=0)
        return await view.with_server_view(stats, before, progress)
    finally:
        view.ended(before)


def timings(stats: RequestStats) -> tuple[float | None, ...]:
    return stats.queue_s, stats.prefill_s, stats.decode_s


def test_an_answer_sent_just_after_another_page_s_has_its_own_timings():
    # This page process read the server (a health check) while another one's answer ran,
    # a moment before: not proof that the server is still busy. The scrape at the first
    # token shows this answer alone, and one request finished by its end.
    async def talk(view: ServerView, server: Metrics) -> tuple[RequestStats, int]:
        server.text = server_after(3, running=1)
        assert (await view.snapshot(has_metrics=True)).running == 1
        stats = await answer(view, server, at_first_token=server_after(4, running=1),
                             at_end=server_after(5))
        return stats, view.scrapes - 1

    stats, scrapes = conversation(talk)
    assert timings(stats) == OWN_TIMINGS
    assert stats.missing == ("device memory",)
    assert scrapes == 2  # at the first token and after the end, as for any lone answer


def test_the_next_message_after_an_answer_that_shared_the_server_has_its_own_timings():
    # The answer that shared the server took its figures from the scrape at its first token,
    # which showed the server running it beside another; the visitor's next message, sent a
    # moment later, runs alone.
    async def talk(view: ServerView, server: Metrics) -> list[RequestStats]:
        shared = await answer(view, server, at_first_token=server_after(0, running=2),
                              at_end=server_after(2))
        alone = await answer(view, server, at_first_token=server_after(2, running=1),
                             at_end=server_after(3))
        return [shared, alone]

    shared, alone = conversation(talk)
    assert timings(shared) == (None, None, None) and shared.missing == NO_TIMINGS
    assert timings(alone) == OWN_TIMINGS
    assert alone.missing == ("device memory",)


@pytest.mark.parametrize("at_first_token", [
    server_after(3, running=2),  # the other page's answer still runs beside it
    server_after(3, running=1, waiting=1),
])
def test_an_answer_that_shared_the_server_with_another_page_s_gets_no_timings(at_first_token):
    # The other one's request, ended between the scrapes around this answer, adds up with
    # this one's in the histograms.
    async def talk(view: ServerView, server: Metrics) -> RequestStats:
        server.text = server_after(3, running=1)
        await view.snapshot(has_metrics=True)
        return await answer(view, server, at_first_token=at_first_token, at_end=server_after(5))

    stats = conversation(talk)
    assert timings(stats) == (None, None, None)
    assert stats.missing == NO_TIMINGS
    assert stats.snapshot is not None and stats.snapshot.kv_cache_usage is not None
