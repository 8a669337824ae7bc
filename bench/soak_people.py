"""The soak's simulated people, in a process of their own:
`python -m bench.soak_people JOB.json OUT.json`.

Each person is a browser: a cookie of their own, a page session (heartbeat, timer ticks),
and messages sent through the page's steps: upload, cost preview, accept, the queued
answer. Between messages they think for an exponential time. Some press Stop
mid-answer (the Stop step, after which the answer's event ends with a note of the stop);
some close the page mid-answer (the SSE connection and the heartbeat drop) and come back
with a new page. They never send while their own answer runs, so a refusal is the app's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from bench.clients import LIMITS, TIMEOUT
from bench.sse_client import API, GradioApp, Reply
from bench.workload import QUESTIONS, SYSTEM
from phi4ui.core.history import INTERRUPTED_TITLE

STOP_WAIT_S = 30.0  # after Stop, the answer's event must end within this
ANSWER_LIMIT_S = 300.0  # an answer that has not ended by then is counted as stuck


@dataclass
class Message:
    """One message as its sender saw it; times in seconds since the run's start."""

    person: int
    kind: str
    plan: str  # "read" (to the end), "stop" or "close"
    sent_at: float
    cleared_first: bool = False
    step: str = ""  # the page's step being sent or read, for the error's report
    outcome: str = ""  # "completed", "stopped", "closed" or "error"
    error: str = ""
    ttft_s: float | None = None
    tokens: int = 0


class Page:
    """One open page of one person: its session, heartbeat and timer."""

    def __init__(self, app: GradioApp, http: httpx.AsyncClient) -> None:
        self.app = app
        self.http = http
        self.session = ""
        self._background: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        (await self.http.get(self.app.base_url + "/")).raise_for_status()
        self.session = await self.app.open_page()
        self._background = [asyncio.create_task(self._heartbeat())]
        if self.app.tick_s > 0 and "tick" in self.app.fn:
            self._background.append(asyncio.create_task(self._ticks()))

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _heartbeat(self) -> None:
        url = f"{self.app.base_url}{API}/heartbeat/{self.session}"
        with contextlib.suppress(httpx.HTTPError):
            async with self.http.stream("GET", url) as stream:
                async for _ in stream.aiter_lines():
                    pass

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(self.app.tick_s)
            with contextlib.suppress(httpx.HTTPError):
                await self.app.run(self.session, "tick", [])


class Person:
    def __init__(self, index: int, job: dict[str, Any], clock: float) -> None:
        self.index = index
        self.job = job
        self.clock = clock
        self.rng = random.Random(job["seed"] * 10_000 + index)
        self.messages: list[Message] = []
        self.pages_opened = 0

    def now(self) -> float:
        return time.perf_counter() - self.clock

    async def live(self) -> None:
        async with httpx.AsyncClient(limits=LIMITS, timeout=TIMEOUT) as http:
            app = GradioApp(self.job["url"], http)
            await app.connect()
            page = await self._open_page(app, http)
            try:
                if "sequence" in self.job:
                    for kind in self.job["sequence"]:
                        await self._send(app, page, kind, "read")
                    return
                # People arrive over the first seconds rather than all in one instant.
                await asyncio.sleep(self.rng.uniform(0, self.job["think_mean_s"]))
                while self.now() < self.job["end_s"]:
                    page = await self._one_message(app, http, page)
            finally:
                await page.close()

    async def _open_page(self, app: GradioApp, http: httpx.AsyncClient) -> Page:
        page = Page(app, http)
        await page.open()
        self.pages_opened += 1
        return page

    async def _one_message(self, app: GradioApp, http: httpx.AsyncClient, page: Page) -> Page:
        """Sends one message, then thinks; returns the page they are on afterwards."""
        kind = self.rng.choices(list(self.job["mix"]), weights=list(self.job["mix"].values()))[0]
        plan = self.rng.choices(["read", "stop", "close"], weights=[
            1 - self.job["stop_share"] - self.job["close_share"], self.job["stop_share"],
            self.job["close_share"]])[0]
        message = await self._send(app, page, kind, plan)
        if message.outcome == "closed":  # they come back to a new page, a new conversation
            await page.close()
            page = await self._open_page(app, http)
        think_s = self.rng.expovariate(1 / self.job["think_mean_s"])
        await asyncio.sleep(max(0.0, min(think_s, self.job["end_s"] - self.now())))
        return page

    async def _send(self, app: GradioApp, page: Page, kind: str, plan: str) -> Message:
        message = Message(self.index, kind, plan, sent_at=self.now(),
                          cleared_first=self.rng.random() < self.job.get("clear_share", 0))
        self.messages.append(message)
        try:
            await self._through_the_page(app, page, message)
        except (httpx.HTTPError, json.JSONDecodeError, KeyError) as error:
            cause = error.__context__ or error.__cause__
            message.outcome, message.error = "error", (
                f"{message.step}: {type(error).__name__}: {error}"
                + (f" ({type(cause).__name__}: {cause})" if cause else ""))[:200]
        return message

    async def _through_the_page(self, app: GradioApp, page: Page, message: Message) -> None:
        if message.cleared_first:  # the chat's Clear button: a new conversation
            message.step = "clear"
            await app.run(page.session, "clear", [None])
        files = []
        if message.kind != "text":  # the browser uploads a file as soon as it is attached
            message.step = "upload"
            files = [await app.upload(self.job["media"][message.kind])]
        text = QUESTIONS[message.kind].format(i=len(self.messages))
        if "preview" in app.fn:
            message.step = "preview"
            await app.run(page.session, "preview", [{"text": text, "files": files}, None, SYSTEM])
        reply = Reply(started=time.perf_counter())
        message.step = "accept"
        refusal = await app.accept(page.session, text, files, SYSTEM)
        if refusal:
            message.outcome, message.error = "error", f"refused: {refusal}"[:200]
            return
        message.step = "answer (join)"
        event_id = await app.join(page.session, "answer", app.answer_data(
            text, files, SYSTEM, self.rng.choice(self.job["max_tokens"])))
        message.step = "answer (stream)"
        await self._follow(app, page, message, reply, event_id)
        message.ttft_s, message.tokens = reply.ttft, reply.completion_tokens

    async def _follow(self, app: GradioApp, page: Page, message: Message, reply: Reply,
                      event_id: str) -> None:
        """Reads the answer; stops it or closes the page at a moment after its first text."""
        reading = asyncio.create_task(app.read_events(page.session, reply, event_id))
        act_after_s = self.rng.uniform(0.0, self.job["act_within_s"])
        acted = await self._wait_to_act(reading, reply, message.plan, act_after_s)
        if acted == "stop":
            message.step = "stop"
            await app.run(page.session, "stop", [None])
            try:
                await asyncio.wait_for(reading, STOP_WAIT_S)
            except TimeoutError:
                message.outcome, message.error = "error", "the answer went on after Stop"
                return
            message.outcome = "stopped"
            return
        if acted == "close":
            reading.cancel()  # leaving the `async with` drops the SSE connection
            await asyncio.gather(reading, return_exceptions=True)
            message.outcome = "closed"
            return
        if not reading.done():
            message.outcome, message.error = "error", f"no end in {ANSWER_LIMIT_S:.0f} s"
            reading.cancel()
            return
        reading.result()
        message.outcome, message.error = _judged(reply)

    async def _wait_to_act(self, reading: asyncio.Task[None], reply: Reply, plan: str,
                           act_after_s: float) -> str:
        """"stop" or "close" when the plan's moment came before the answer ended; "" when
        the answer ended (or ran past the limit) first."""
        deadline = time.perf_counter() + ANSWER_LIMIT_S
        if plan == "read":
            await asyncio.wait([reading], timeout=ANSWER_LIMIT_S)
            return ""
        while not reading.done() and time.perf_counter() < deadline:
            if reply.first_text_at is not None and \
                    time.perf_counter() - reply.first_text_at >= act_after_s:
                return plan
            await asyncio.wait([reading], timeout=0.05)
        return ""


def _judged(reply: Reply) -> tuple[str, str]:
    if reply.error:
        return "error", f"answer failed: {reply.error}"[:200]
    interrupted = [m for m in reply.chat if isinstance(m, dict)
                   and str((m.get("metadata") or {}).get("title", "")).startswith(
                       INTERRUPTED_TITLE)]
    if interrupted:
        return "error", f"answer interrupted: {interrupted[-1].get('content', '')}"[:200]
    if reply.first_text_at is None:
        return "error", "the answer ended without text"
    return "completed", ""


async def run(job: dict[str, Any]) -> dict[str, Any]:
    clock = time.perf_counter()
    cpu_at_start = time.process_time()
    people = [Person(index, job, clock) for index in job["people"]]
    outcomes = await asyncio.gather(*(person.live() for person in people),
                                    return_exceptions=True)
    failures = [f"{type(o).__name__}: {o}"[:200] for o in outcomes if isinstance(o, BaseException)]
    return {"messages": [asdict(m) for p in people for m in p.messages],
            "pages_opened": sum(p.pages_opened for p in people),
            "people_failed": failures,
            "cpu_s": round(time.process_time() - cpu_at_start, 2),
            "wall_s": round(time.perf_counter() - clock, 2)}


def main() -> int:
    job_path, out_path = sys.argv[1], sys.argv[2]
    with open(job_path) as handle:
        job = json.load(handle)
    result = asyncio.run(run(job))
    with open(out_path, "w") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
