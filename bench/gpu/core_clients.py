"""Does vLLM's engine core step more slowly with several client processes than with one? The
engine core that `serve --scale-out core` shares, with N processes as its direct clients:
each an AsyncLLM that calls `generate` for its share of the people, as bench/raw.py does in
one process. No page, no Gradio and no HTTP take part, so a difference from raw here is the
engine core's work per client (its sockets, its outputs sent per client), not a front end.

    python -m bench.gpu.core_clients --model CHECKPOINT --out DIR [--clients 8]
        [--users 64] [--answers 6] [--rounds 3]

Each round starts at once in every client (a go file), and the round's tokens per second are
its tokens over the span from the first request's start to the last one's end across all
clients (perf_counter is the system's monotonic clock, one for every process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import machine_cpu
from bench.raw import one_answer, plan_request
from bench.workload import QUESTIONS, RequestTiming, Scenario, ScenarioResult, prepare_workspace
from phi4ui.engines import model_source, shared_core, vllm_compat
from phi4ui.engines.embedded import EmbeddedEngine
from phi4ui.engines.shared_core import Attachment
from phi4ui.settings import load_settings

POLL_S = 0.002


async def client(job_path: Path, index: int) -> None:
    """One client process: attaches to the core, then plays its people in each round."""
    job = json.loads(job_path.read_text())
    work = job_path.parent
    engine = EmbeddedEngine(load_settings(job["app_args"], environ={}),
                            attachment=Attachment.from_env(os.environ))
    await engine.start()
    if engine.status.state != "ready":
        raise SystemExit(f"client {index}: {engine.status.message}")
    await one_answer(engine.vllm_engine, engine, await plan_request(engine, "text", job, 16, 0))
    (work / f"ready-{index}").touch()
    scenario = Scenario(**job["scenario"])
    people = range(index, scenario.users, job["clients"])
    for round_ in range(job["rounds"]):
        while not (work / f"go-{round_}").exists():
            await asyncio.sleep(POLL_S)
        timings = await _people(engine, scenario, job, list(people))
        (work / f"done-{round_}-{index}.json").write_text(
            json.dumps([asdict(t) for t in timings]))
    await engine.close()


async def _people(engine: EmbeddedEngine, scenario: Scenario, job: dict[str, Any],
                  people: list[int]) -> list[RequestTiming]:
    requests = {person: [await plan_request(engine, "text", job, scenario.output_tokens,
                                            person * 1000 + n)
                         for n in range(scenario.requests_per_user)] for person in people}
    timings: list[RequestTiming] = []

    async def person(own: list[Any]) -> None:
        for request in own:
            timings.append(await one_answer(engine.vllm_engine, engine, request))

    await asyncio.gather(*(person(own) for own in requests.values()))
    return timings


def supervise(args: argparse.Namespace) -> dict[str, Any]:
    workspace = prepare_workspace(args.out, args.model, args.max_model_len, args.max_num_seqs,
                                  "phi4ui-core-clients-")
    settings = load_settings(workspace.app_args, environ={})
    scenario = Scenario("text", args.users, args.answers, args.tokens)
    work = Path(tempfile.mkdtemp(prefix="core-clients-"))
    job_path = work / "job.json"
    job_path.write_text(json.dumps({
        "app_args": workspace.app_args, "media": workspace.media, "questions": QUESTIONS,
        "scenario": asdict(scenario), "clients": args.clients, "rounds": args.rounds}))
    vllm_compat.set_process_defaults(settings.cpu_kv_cache_gib)
    has_gpu = vllm_compat.has_cuda()
    source = model_source.resolve(settings, has_gpu=has_gpu)
    engine_args = vllm_compat.engine_args(vllm_compat.engine_config(settings, source,
                                                                      has_gpu=has_gpu))
    clients: list[subprocess.Popen[bytes]] = []

    def start_clients(attachments: list[Attachment]) -> None:
        for index, attachment in enumerate(attachments):
            clients.append(subprocess.Popen(
                [sys.executable, "-m", "bench.gpu.core_clients", "--client", str(index),
                 "--job", str(job_path)], env={**os.environ, **attachment.as_env()}))

    core = shared_core.start_core(engine_args, args.clients, work / "board", start_clients)
    try:
        _wait_for(lambda: all((work / f"ready-{i}").exists() for i in range(args.clients)),
                  clients)
        from bench.__main__ import machine

        return {"machine": machine(), "clients": args.clients, "scenario": asdict(scenario),
                "rounds": [_round(work, scenario, round_, args.clients, clients)
                           for round_ in range(args.rounds)]}
    finally:
        for process in clients:
            process.terminate()
        for process in clients:
            process.wait(timeout=60)
        core.shutdown(30)


def _round(work: Path, scenario: Scenario, round_: int, count: int,
           clients: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    before = machine_cpu.snapshot()
    (work / f"go-{round_}").touch()
    files = [work / f"done-{round_}-{i}.json" for i in range(count)]
    _wait_for(lambda: all(f.exists() for f in files), clients)
    usage = machine_cpu.usage(before, machine_cpu.snapshot())
    result = ScenarioResult(f"core, {count} clients", scenario)
    for file in files:
        result.requests += [RequestTiming(**t) for t in json.loads(file.read_text())]
    summary = {k: v for k, v in result.summary().items()
               if k in ("path", "errors", "aggregate_tok_s", "itl_p50_ms", "itl_p95_ms",
                        "ttft_p50_ms", "ttft_p95_ms")}
    found = {"round": round_, **summary, "busy_cores": usage["busy_cores"],
             "by_kind": usage["by_kind"]}
    print(json.dumps(found), file=sys.stderr, flush=True)
    return found


def _wait_for(done: Any, clients: list[subprocess.Popen[bytes]]) -> None:
    while not done():
        if any(process.poll() is not None for process in clients):
            raise SystemExit("a client process ended early")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="")
    parser.add_argument("--out", default="core-clients-out")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--answers", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-model-len", type=int, default=8192)
    parser.add_argument("--max-num-seqs", type=int, default=64)
    parser.add_argument("--client", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("--job", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client >= 0:
        asyncio.run(client(Path(args.job), args.client))
        return
    found = supervise(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"core-clients-{args.clients}.json").write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
