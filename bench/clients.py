"""Simulated people: `python -m bench.clients JOB.json OUT.json` runs them in
`client_procs` processes of their own (bench/fleet.py); this module is what each runs.

`target` "app" talks to phi4ui's page API (the Gradio queue over HTTP, one page session
and one cookie jar each, as a browser has); "openai" talks to an OpenAI-compatible server
(vLLM's) directly. In the closed load each of N people sends their requests one after
another and the N people run at once; in the realistic load (Scenario.arrival_s) they
arrive at random and think between messages. An answer that is not a full one is an
error: for the page, one without its statistics or with fewer tokens than asked for (see
`sse_client.incomplete`); for the server, one that does not end at its token budget.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import httpx2

from bench.sse_client import GradioApp, Reply, incomplete
from bench.workload import (
    SYSTEM,
    RequestTiming,
    Scenario,
    engine_gap,
    largest_gap,
    token_gaps,
)

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

LIMIT_COUNTS = {"max_connections": 1000, "max_keepalive_connections": 1000}
TIMEOUT_S = (600.0, 30.0)  # in all, to connect
LIMITS = httpx.Limits(**LIMIT_COUNTS)
TIMEOUT = httpx.Timeout(TIMEOUT_S[0], connect=TIMEOUT_S[1])
User = Callable[[str, int, int], Awaitable[RequestTiming]]


def people_of(scenario: Scenario, process: int, processes: int) -> list[int]:
    """The people (by index) that one of `processes` client processes plays: every
    `processes`-th, so that the split is even."""
    return list(range(process, scenario.users, processes))


async def run_people(user: User, scenario: Scenario, people: list[int]) -> list[RequestTiming]:
    """The people's requests, closed loop or realistic, as their scenario says."""
    timings: list[RequestTiming] = []
    arrivals = arrival_times(scenario)

    async def one_person(index: int) -> None:
        thinking = random.Random(f"{scenario.name}-{index}")
        if scenario.arrival_s:
            await asyncio.sleep(arrivals[index])
        for n in range(scenario.requests_per_user):
            if n and scenario.think_s:
                await asyncio.sleep(thinking.expovariate(1 / scenario.think_s))
            timings.append(await user(scenario.kind, scenario.output_tokens, index * 1000 + n))

    await asyncio.gather(*(one_person(i) for i in people))
    return timings


def arrival_times(scenario: Scenario) -> list[float]:
    """When each person arrives, from the start: a Poisson process of mean gap arrival_s,
    the same in every client process (one seed per scenario)."""
    if not scenario.arrival_s:
        return [0.0] * scenario.users
    rng = random.Random(f"arrivals-{scenario.name}")
    times, now = [], 0.0
    for _ in range(scenario.users):
        now += rng.expovariate(1 / scenario.arrival_s)
        times.append(now)
    return times


class AppPeople:
    """People on the page: each their own HTTP client (so their own cookies: a sticky load
    balancer keeps them on one front end), page session and uploaded media."""

    def __init__(self, job: dict[str, Any], url: str) -> None:
        self.job, self.url = job, url
        self.people: dict[int, tuple[GradioApp, str, dict[str, list[dict[str, Any]]]]] = {}

    async def prepare(self, people: list[int], kinds: set[str]) -> None:
        """Opens the page (and uploads the media) for people not seen yet, before the clock
        starts."""
        for person in people:
            if person not in self.people:
                app = GradioApp(self.url, httpx.AsyncClient(limits=LIMITS, timeout=TIMEOUT))
                await app.connect()
                session = await app.open_page()
                uploads: dict[str, list[dict[str, Any]]] = {
                    kind: [await app.upload(self.job["media"][kind])]
                    for kind in ("image", "audio") if kind in kinds}
                self.people[person] = (app, session, uploads)

    async def user(self, kind: str, tokens: int, index: int) -> RequestTiming:
        app, session, uploads = self.people[index // 1000]
        question = self.job["questions"][kind].format(i=index)
        try:
            reply = await app.chat(session, question, uploads.get(kind, []), tokens, SYSTEM)
        except httpx.HTTPError as error:
            now = time.perf_counter()
            return RequestTiming(None, [], 0, now, now, error=str(error) or type(error).__name__)
        return RequestTiming(ttft=reply.ttft,
                             token_gaps=token_gaps(reply.updates, reply.completion_tokens),
                             tokens=reply.completion_tokens, started=reply.started,
                             ended=reply.ended, error=incomplete(reply, tokens),
                             largest_gap=largest_gap(reply.updates), app_ttft=reply.app_ttft,
                             streaming_s=(reply.updates[-1] - reply.updates[0]
                                          if reply.updates else None),
                             page_steps_s=_with_answer_start(reply),
                             engine_gap=engine_gap(reply.engine_decode_s,
                                                   reply.completion_tokens),
                             page_gap=1 / reply.page_rate if reply.page_rate else None)

    async def close(self) -> None:
        for app, _, _ in self.people.values():
            await app.client.aclose()


class OpenAIPeople:
    """People calling the server's streaming chat completions, through the OpenAI client."""

    def __init__(self, job: dict[str, Any], url: str) -> None:
        from openai import AsyncOpenAI

        self.client = AsyncOpenAI(base_url=url + "/v1", api_key="EMPTY", max_retries=0,
                                  timeout=600, http_client=httpx2.AsyncClient(
                                      limits=httpx2.Limits(**LIMIT_COUNTS),
                                      timeout=httpx2.Timeout(TIMEOUT_S[0], connect=TIMEOUT_S[1])))
        self.job = job
        media = job["media"]
        self.parts: dict[str, dict[str, Any]] = {}
        if "image" in media:
            self.parts["image"] = {"type": "image_url", "image_url": {
                "url": "data:image/png;base64," + _b64(media["image"])}}
        if "audio" in media:
            self.parts["audio"] = {"type": "input_audio", "input_audio": {
                "data": _b64(media["audio"]), "format": "wav"}}
        self.models = {"text": job.get("base_model", ""), "image": "vision", "audio": "speech"}

    async def prepare(self, people: list[int], kinds: set[str]) -> None:
        return None

    async def user(self, kind: str, tokens: int, index: int) -> RequestTiming:
        started = time.perf_counter()
        try:
            return await self._stream(kind, tokens, index, started)
        except Exception as error:  # noqa: BLE001 - any failure of a request is its error
            now = time.perf_counter()
            return RequestTiming(None, [], 0, started, now,
                                 error=f"{type(error).__name__}: {error}")

    async def _stream(self, kind: str, tokens: int, index: int,
                      started: float) -> RequestTiming:
        content: list[Any] = [self.parts[kind]] if kind in self.parts else []
        content.append({"type": "text", "text": self.job["questions"][kind].format(i=index)})
        chunks: list[tuple[float, int]] = []  # (when, tokens it brought)
        seen, finish = 0, None
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]
        stream = await self.client.chat.completions.create(
            model=self.models[kind], stream=True, max_tokens=tokens, temperature=0.0,
            messages=messages, extra_body={  # vLLM's own fields beside OpenAI's
                "ignore_eos": True,
                "stream_options": {"include_usage": True, "continuous_usage_stats": True}})
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
            total = chunk.usage.completion_tokens if chunk.usage else seen
            if total > seen:
                chunks.append((time.perf_counter(), total - seen))
                seen = total
        full = seen == tokens and finish == "length"
        return RequestTiming(
            ttft=chunks[0][0] - started if chunks else None, token_gaps=_per_token(chunks),
            tokens=seen, started=started, ended=time.perf_counter(),
            error="" if full else f"{seen} of {tokens} tokens, finish reason {finish}",
            largest_gap=largest_gap([at for at, _ in chunks]),
            streaming_s=chunks[-1][0] - chunks[0][0] if chunks else None)

    async def close(self) -> None:
        await self.client.close()


def _with_answer_start(reply: Reply) -> dict[str, float]:
    steps = dict(reply.steps_s)
    if reply.ttft is not None and reply.app_ttft is not None:
        steps["answer start"] = reply.ttft - steps.get("accept", 0.0) - reply.app_ttft
    return steps


def _per_token(chunks: list[tuple[float, int]]) -> list[float]:
    """Per-token gaps: the tokens of a chunk share the wait for it evenly."""
    gaps: list[float] = []
    for (before, _), (after, count) in itertools.pairwise(chunks):
        gaps.extend([(after - before) / count] * count)
    return gaps


def people_for(job: dict[str, Any], url: str) -> AppPeople | OpenAIPeople:
    return AppPeople(job, url) if job["target"] == "app" else OpenAIPeople(job, url)


def _b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def main() -> None:
    from bench import fleet

    job = json.loads(Path(sys.argv[1]).read_text())
    Path(sys.argv[2]).write_text(json.dumps(fleet.run(job), indent=2))


if __name__ == "__main__":
    main()
