"""The remote server's own view of an answer, from its Prometheus `/metrics`: KV cache,
queue, and the request's queue, prefill and decode time. Read beside the stream, never
in its way: a scrape that fails leaves the figures out and says which.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace

import httpx

from phi4ui.core.memory import process_memory
from phi4ui.core.stats import EngineSnapshot, RequestStats
from phi4ui.engines import openai_wire as wire
from phi4ui.engines import prometheus
from phi4ui.engines.remote_server import NO_METRICS

log = logging.getLogger(__name__)

# After the last token, vLLM records the request's histograms a moment later.
AFTER_SCRAPE_DELAYS_S = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)
# An answer that shared the server with others cannot have its own timings (they are told
# apart only when one request finished between two scrapes): its end shows the server as a
# scrape begun at most this long before it found it, shared with the answers ending near it.
SHARED_SCRAPE_AGE_S = 0.5
# A lone answer can take a scrape of an idle server at most this old as its "before" (the
# engine panel reads one every 2 s while a page is open): each scrape has the server render
# /metrics, work that competes with the answer's own tokens on a busy machine. Should
# another request end in between, the timings are left out, never misattributed.
RECENT_IDLE_SCRAPE_S = 3.0
NO_REQUEST_TIMINGS = ("queue time", "prefill time", "decode time")
ALWAYS_MISSING = ("device memory",)  # vLLM's /metrics does not export it


@dataclass
class Before:
    """The scrapes that can serve as "before" a request: the latest one at hand when it
    was sent, and a fresh one taken once its first token has come. vLLM records a
    request's queue, prefill and decode time when it finishes, so any scrape before the
    end will do; taken after the first token, it does not compete on the server with the
    request's own start."""

    latest: prometheus.Scrape | None
    crowded: bool  # others of this process were answering when it was sent
    started: int  # the view's count of answers begun, this one included
    fresh: asyncio.Future[prometheus.Scrape | None] | None = None
    over: bool = False

    def first_token(self, view: ServerView) -> None:
        """Takes the fresh scrape, unless others of this process share the server (then
        no scrape can tell this answer's timings apart, and one per answer would only load
        the server) or the latest one is recent and shows the server idle. A latest one
        that shows it busy decides nothing: what it shows may have ended since."""
        if self.fresh is None and not self.crowded and not self._recent_idle():
            self.fresh = asyncio.ensure_future(view.scrape())

    def _recent_idle(self) -> bool:
        latest = self.latest
        return (latest is not None and not _busy(latest)
                and time.monotonic() - latest.taken_at < RECENT_IDLE_SCRAPE_S)

    def cancel(self) -> None:
        if self.fresh is not None:
            self.fresh.cancel()

    def fresh_result(self) -> prometheus.Scrape | None:
        fresh = self.fresh
        return fresh.result() if fresh is not None and fresh.done() else None

    async def taken_before(self, finished_at: float) -> prometheus.Scrape | None:
        """The fresh scrape, unless the answer ended first (on a busy machine a short
        answer can): one taken after the end already counts the request."""
        fresh = await self.fresh if self.fresh is not None else None
        if fresh is not None and fresh.taken_at < finished_at:
            return fresh
        return self.latest


def _busy(scrape: prometheus.Scrape, own: int = 0) -> bool:
    """Whether the server ran or queued more than `own` requests at the scrape."""
    return (scrape.total(prometheus.RUNNING) or 0) + (scrape.total(prometheus.WAITING) or 0) > own


def _why_no_timings(shared: bool, first: prometheus.Scrape | None,
                    last: prometheus.Scrape) -> str:
    if shared:
        return "it shared the server"
    if first is None:
        return "no scrape before it"
    return (f"{prometheus.finished_between(first, last)} requests finished between the "
            "scrapes around it, or not with its tokens")


class ServerView:
    """Scrapes one server's `/metrics` and adds what they tell to an answer's statistics."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._last_scrape: prometheus.Scrape | None = None
        # One scrape at a time, shared by every answer that can use it: with many people
        # at once, each answer's own scrapes would cost the server (which renders them)
        # and this process (which parses them) per answer.
        self._in_flight: asyncio.Future[prometheus.Scrape | None] | None = None
        self._in_flight_since = 0.0
        self._answering = 0  # answers between `before` and their server view
        self._started = 0  # answers begun since start
        self.scrapes = 0  # fetched, for tests and logs

    def before(self) -> Before:
        """Call as a request is sent, `first_token` on what it returns when the request's
        first token comes, and `ended` once it is over, whatever the way.

        Only this process's own answers in flight make it crowded. A scrape that shows the
        server busy is no proof that it still is: the request it shows may be another page
        process's that ended since, or the last answer's own, read just before its end.
        The fresh scrape at the first token tells, with the counts of finished requests."""
        self._answering += 1
        self._started += 1
        return Before(self._last_scrape, crowded=self._answering > 1, started=self._started)

    def ended(self, before: Before) -> None:
        before.cancel()
        if not before.over:
            before.over = True
            self._answering -= 1

    def _shared_the_server(self, before: Before, first: prometheus.Scrape | None) -> bool:
        """Whether another request may have ended while this one ran: one of this process
        was running or began, or the server ran another (by the scrape after the first
        token, which counts this request itself)."""
        return (before.crowded or self._started != before.started or self._answering > 1
                or (first is not None and first is before.fresh_result() and _busy(first, 1)))

    async def with_server_view(self, stats: RequestStats, before: Before | None,
                               progress: wire.StreamProgress) -> RequestStats:
        """`stats` with the server's figures for this request; its own timings untouched.
        `before` is None for a server without metrics."""
        if before is None:
            return replace(stats, snapshot=EngineSnapshot(device_name="remote server",
                                                          process_memory=process_memory()),
                           missing=NO_METRICS + ALWAYS_MISSING)
        assert progress.finished_at is not None
        first = await before.taken_before(progress.finished_at)
        shared = self._shared_the_server(before, first)
        if shared:
            first, last = None, await self.scrape(
                started_after=progress.finished_at - SHARED_SCRAPE_AGE_S)
        else:
            last = await self._scrape_after(first, progress.finished_at)
        if last is None:
            return replace(stats, missing=NO_METRICS + ALWAYS_MISSING)
        timings, adapters = None, None
        if first is not None:
            timings = prometheus.request_timings(first, last, prompt_tokens=progress.prompt_tokens,
                                                 completion_tokens=progress.completion_tokens)
            adapters = prometheus.adapters_between(first, last)
        snapshot = prometheus.snapshot(last, process_memory=process_memory(), adapters=adapters)
        if timings is None:
            if log.isEnabledFor(logging.DEBUG):  # the reason costs a walk of both scrapes
                log.debug("Remote engine: no queue, prefill or decode time for this answer: %s",
                          _why_no_timings(shared, first, last))
            return replace(stats, snapshot=snapshot, missing=NO_REQUEST_TIMINGS + ALWAYS_MISSING)
        return replace(stats, snapshot=snapshot, queue_s=timings.queue_s,
                       prefill_s=timings.prefill_s, decode_s=timings.decode_s,
                       missing=ALWAYS_MISSING)

    async def _scrape_after(self, first: prometheus.Scrape | None,
                            finished_at: float) -> prometheus.Scrape | None:
        """A scrape that shows the request finished (waits up to `AFTER_SCRAPE_DELAYS_S`)."""
        last = None
        for attempt, delay in enumerate(AFTER_SCRAPE_DELAYS_S if first is not None else (0.0,)):
            await asyncio.sleep(delay)
            last = await self.scrape(started_after=time.monotonic() if attempt else finished_at)
            if last is None or first is None or prometheus.finished_between(first, last):
                break
        return last

    async def scrape(self, started_after: float | None = None) -> prometheus.Scrape | None:
        """A scrape of `/metrics`: the one in flight, or the last one, when it began after
        `started_after` (the one in flight, without it), else a new one."""
        shared = self._in_flight
        if (started_after is not None and shared is not None and shared.done()
                and self._in_flight_since >= started_after):
            return shared.result()
        if shared is None or shared.done() or (started_after is not None
                                               and self._in_flight_since < started_after):
            self._in_flight_since = time.monotonic()
            shared = self._in_flight = asyncio.ensure_future(self._fetch())
        return await asyncio.shield(shared)

    async def _fetch(self) -> prometheus.Scrape | None:
        self.scrapes += 1
        try:
            response = await self._http.get("/metrics")
            response.raise_for_status()
            scrape = prometheus.parse(response.text)
        except (httpx.HTTPError, ValueError) as error:
            log.debug("Remote engine: /metrics failed: %s", error)
            return None
        if self._last_scrape is None or scrape.taken_at > self._last_scrape.taken_at:
            self._last_scrape = scrape
        return scrape

    async def snapshot(self, has_metrics: bool) -> EngineSnapshot:
        scrape = await self.scrape() if has_metrics else None
        if scrape is None:
            return EngineSnapshot(device_name="remote server", process_memory=process_memory())
        return prometheus.snapshot(scrape, process_memory=process_memory())
