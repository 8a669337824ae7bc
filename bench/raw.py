"""The floor: vLLM's AsyncLLM alone, with the app's engine settings and prompts.

Run as its own process (`python -m bench.raw JOB.json OUT.json`) so its memory
is the engine's alone. Media are decoded and prompts rendered before the clock
starts; only `generate` is timed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import machine_cpu
from bench.procs import TreeMemory, profiling
from bench.workload import (
    SYSTEM,
    RequestTiming,
    Scenario,
    ScenarioResult,
    engine_gap,
    largest_gap,
)
from phi4ui.core import answer_stream
from phi4ui.core.chat import Sampling
from phi4ui.engines import vllm_compat
from phi4ui.engines.embedded import EmbeddedEngine
from phi4ui.engines.vllm_inputs import vllm_prompt, vllm_sampling
from phi4ui.settings import load_settings


async def run(job: dict[str, Any]) -> dict[str, Any]:
    memory = TreeMemory()
    # The app's engine class loads vLLM with the app's settings and plans each request
    # (same prompt, media, adapter and token budget); the timed calls go to AsyncLLM alone.
    planner = EmbeddedEngine(load_settings(job["app_args"], environ={}))
    started = time.perf_counter()
    await planner.start()
    start_s = time.perf_counter() - started
    if planner.status.state != "ready":
        raise SystemExit(f"engine failed: {planner.status.message}")
    llm = planner.vllm_engine
    results = []
    try:
        for kind in {s["kind"] for s in job["scenarios"]}:
            warm_up = await plan_request(planner, kind, job, 16, 0)
            await one_answer(llm, planner, warm_up)
        profile_to = Path(job["profile_dir"]) if job.get("profile_dir") else None
        with profiling(os.getpid(), profile_to, "raw", with_children=True):
            for spec in job["scenarios"]:
                for pause_s in _pauses(job):
                    scenario = Scenario(**spec)
                    result = ScenarioResult("raw_paced" if pause_s else "raw", scenario)
                    machine = await serve_people(llm, planner, scenario, job, result, pause_s)
                    results.append({**result.summary(), "machine_cpu": machine})
                    print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    finally:
        await planner.close()
    return {"engine_start_s": round(start_s, 2), "engine_peak_rss": memory.peak(),
            "results": results}


async def plan_request(planner: EmbeddedEngine, kind: str, job: dict[str, Any], tokens: int,
                       index: int) -> Any:
    files = [job["media"][kind]] if kind in ("image", "audio") else []
    text = job["questions"][kind].format(i=index)
    sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=tokens, ignore_eos=True)
    message = {"text": text, "files": files}
    request = await answer_stream.plan(planner, [], message, SYSTEM, sampling)
    return replace(request, sampling=replace(request.sampling, ignore_eos=True))


def _pauses(job: dict[str, Any]) -> list[float]:
    """Each scenario runs with its people in step, then, when asked, with their pauses."""
    return [0.0] + ([job["raw_pause_ms"] / 1000] if job.get("raw_pause_ms") else [])


async def serve_people(llm: Any, planner: EmbeddedEngine, scenario: Scenario,
                       job: dict[str, Any], result: ScenarioResult,
                       pause_s: float = 0.0) -> dict[str, Any]:
    """Runs the scenario's people; returns the machine's CPU while they ran. With `pause_s`,
    each person first waits a random time of that mean before each answer (seeded: the same
    waits in every run), outside the answer's own timing."""
    requests = [[await plan_request(planner, scenario.kind, job, scenario.output_tokens,
                                    user * 1000 + n) for n in range(scenario.requests_per_user)]
                for user in range(scenario.users)]

    pauses = random.Random(scenario.users)

    async def user(own: list[Any]) -> None:
        for request in own:
            if pause_s:
                await asyncio.sleep(pauses.uniform(0.0, 2 * pause_s))
            result.requests.append(await one_answer(llm, planner, request))

    before = machine_cpu.snapshot()
    await asyncio.gather(*(user(own) for own in requests))
    return machine_cpu.usage(before, machine_cpu.snapshot())


async def one_answer(llm: Any, planner: EmbeddedEngine, request: Any) -> RequestTiming:
    """One request to AsyncLLM, timed as the client sees its outputs."""
    started = time.perf_counter()
    first = last = None
    gaps: list[float] = []
    updates: list[float] = []
    tokens = 0
    output = None
    async for output in llm.generate(vllm_prompt(request), vllm_sampling(request),
                                     uuid.uuid4().hex,
                                     lora_request=planner.lora_for(request.adapter)):
        count = len(output.outputs[0].token_ids)
        if not count:
            continue
        now = time.perf_counter()
        updates.append(now)
        if last is None:
            first = now
        else:
            gaps.extend([(now - last) / count] * count)
        last = now
        tokens += count
    wanted = request.sampling.max_tokens
    return RequestTiming(ttft=None if first is None else first - started, token_gaps=gaps,
                         tokens=tokens, started=started, ended=time.perf_counter(),
                         error="" if tokens == wanted else f"{tokens} of {wanted} tokens",
                         largest_gap=largest_gap(updates),
                         streaming_s=None if first is None or last is None else last - first,
                         engine_gap=engine_gap(_decode_s(output), tokens),
                         page_gap=None)


def _decode_s(output: Any) -> float | None:
    return None if output is None else vllm_compat.engine_timings(output).decode_s


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    Path(sys.argv[2]).write_text(json.dumps(asyncio.run(run(job)), indent=2))


if __name__ == "__main__":
    main()
