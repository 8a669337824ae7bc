"""Simulated people, in a process of their own: `python -m bench.clients JOB.json OUT.json`.

`target` "app" talks to phi4ui's page API (the Gradio queue over HTTP, one
session each); "openai" talks to a vLLM server directly, the baseline of the
remote engine. Each of N users sends its requests one after another; the N
users run at once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.sse_client import GradioApp
from bench.workload import SYSTEM, RequestTiming, Scenario, ScenarioResult, token_gaps

LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
TIMEOUT = httpx.Timeout(600, connect=30)


async def run(job: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(limits=LIMITS, timeout=TIMEOUT) as http:
        user = await _app_user(job, http) if job["target"] == "app" else _openai_user(job)
        for kind in {s["kind"] for s in job["scenarios"]}:
            await user(kind, 16, 0)  # warm-up: the first image is encoded once, then cached
        results = []
        for spec in job["scenarios"]:
            scenario = Scenario(**spec)
            result = ScenarioResult(job["path"], scenario)
            await _users(user, scenario, result)
            results.append(result.summary())
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    return {"results": results}


async def _users(user: Any, scenario: Scenario, result: ScenarioResult) -> None:
    async def one_person(index: int) -> None:
        for n in range(scenario.requests_per_user):
            result.requests.append(await user(scenario.kind, scenario.output_tokens,
                                              index * 1000 + n))

    await asyncio.gather(*(one_person(i) for i in range(scenario.users)))


async def _app_user(job: dict[str, Any], http: httpx.AsyncClient) -> Any:
    app = GradioApp(job["url"], http)
    await app.connect()
    uploaded = {kind: [await app.upload(job["media"][kind])] for kind in ("image", "audio")}
    sessions: dict[int, str] = {}  # by person

    async def user(kind: str, tokens: int, index: int) -> RequestTiming:
        question = job["questions"][kind].format(i=index)
        try:
            person = index // 1000
            if person not in sessions:
                sessions[person] = await app.open_page()
            reply = await app.chat(sessions[person], question, uploaded.get(kind, []), tokens,
                                   SYSTEM)
        except httpx.HTTPError as error:
            now = time.perf_counter()
            return RequestTiming(None, [], 0, now, now, error=str(error) or type(error).__name__)
        return RequestTiming(ttft=reply.ttft,
                             token_gaps=token_gaps(reply.updates, reply.completion_tokens),
                             tokens=reply.completion_tokens, started=reply.started,
                             ended=reply.ended, error=reply.error)

    return user


def _openai_user(job: dict[str, Any]) -> Any:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=job["url"] + "/v1", api_key="EMPTY", max_retries=0,
                         timeout=600, http_client=httpx.AsyncClient(limits=LIMITS,
                                                                    timeout=TIMEOUT))
    parts = {"image": {"type": "image_url", "image_url": {
                 "url": "data:image/png;base64," + _b64(job["media"]["image"])}},
             "audio": {"type": "input_audio", "input_audio": {
                 "data": _b64(job["media"]["audio"]), "format": "wav"}}}
    models = {"text": job["base_model"], "image": "vision", "audio": "speech"}

    async def user(kind: str, tokens: int, index: int) -> RequestTiming:
        content = [parts[kind]] if kind in parts else []
        content.append({"type": "text", "text": job["questions"][kind].format(i=index)})
        started = time.perf_counter()
        first = last = None
        gaps: list[float] = []
        seen = 0
        stream = await client.chat.completions.create(
            model=models[kind], stream=True, max_tokens=tokens, temperature=0.0,
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}],
            stream_options={"include_usage": True, "continuous_usage_stats": True},
            extra_body={"ignore_eos": True})
        async for chunk in stream:
            total = chunk.usage.completion_tokens if chunk.usage else seen
            count = total - seen
            if count <= 0:
                continue
            now = time.perf_counter()
            if first is None:
                first = now
            else:
                gaps.extend([(now - last) / count] * count)
            last, seen = now, total
        return RequestTiming(ttft=None if first is None else first - started, token_gaps=gaps,
                             tokens=seen, started=started, ended=time.perf_counter())

    return user


def _b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    Path(sys.argv[2]).write_text(json.dumps(asyncio.run(run(job)), indent=2))


if __name__ == "__main__":
    main()
