"""Does busy CPU elsewhere on the machine slow vLLM's engine? The raw engine (AsyncLLM in
this process, as bench/raw.py runs it) serves the same closed load round after round, while
0 to N burner processes keep other cores busy. No page process, no HTTP and no client
process take part, so whatever slows the engine's steps here is the machine, not a front end.

    python -m bench.gpu.contention --model CHECKPOINT --out DIR [--burners 0,4,8]
        [--kinds churn,spin] [--users 64] [--answers 6] [--repeats 2]

Burners: `spin` counts in a loop (one core's arithmetic, little memory); `churn` builds and
drops small dicts, lists and strings and turns them to JSON and back, as a page process does
with each update. Each burner reports its loops per second, so that a machine whose cores slow
down as more of them are busy shows it. Rounds alternate (every burner count and kind, then
again) so that drift over time falls on all of them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

from bench.raw import serve_people
from bench.workload import QUESTIONS, Scenario, ScenarioResult, prepare_workspace
from phi4ui.engines.embedded import EmbeddedEngine
from phi4ui.settings import load_settings


def _spin(stop: Any, loops: Any) -> None:
    count = 0
    while not stop.is_set():
        for _ in range(100_000):
            count += 1
        with loops.get_lock():
            loops.value += 100_000


def _churn(stop: Any, loops: Any) -> None:
    while not stop.is_set():
        for n in range(200):
            update = {"text": "word " * (n % 50), "tokens": list(range(n % 64)), "n": n}
            json.loads(json.dumps([update, {"history": [update] * 4}]))
        with loops.get_lock():
            loops.value += 200


BURNERS = {"spin": _spin, "churn": _churn}


class Burners:
    """`count` processes running one burner kind until stopped."""

    def __init__(self, kind: str, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop = context.Event()
        self.loops = [context.Value("q", 0) for _ in range(count)]
        self.processes = [context.Process(target=BURNERS[kind], args=(self.stop, loops),
                                          daemon=True) for loops in self.loops]

    def __enter__(self) -> Burners:
        for process in self.processes:
            process.start()
        time.sleep(1.0 if self.processes else 0.0)  # started and spinning before the clock
        self.started = time.perf_counter()
        self.before = [loops.value for loops in self.loops]
        return self

    def rate(self) -> float | None:
        """Loops per second per burner, the mean, since the clock started."""
        if not self.loops:
            return None
        wall = time.perf_counter() - self.started
        done = [loops.value - before for loops, before in zip(self.loops, self.before,
                                                               strict=True)]
        return round(sum(done) / len(done) / wall, 1)

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workspace = prepare_workspace(args.out, args.model, args.max_model_len, args.max_num_seqs,
                                  "phi4ui-contention-")
    job = {"media": workspace.media, "questions": QUESTIONS}
    planner = EmbeddedEngine(load_settings(workspace.app_args, environ={}))
    await planner.start()
    if planner.status.state != "ready":
        raise SystemExit(f"engine failed: {planner.status.message}")
    scenario = Scenario("text", args.users, args.answers, args.tokens)
    rounds = []
    try:
        warm_up = Scenario("text", 4, 1, 16)
        await serve_people(planner.vllm_engine, planner, warm_up, job,
                           ScenarioResult("warm-up", warm_up))
        for repeat in range(args.repeats):
            for kind in args.kinds.split(","):
                for count in (int(n) for n in args.burners.split(",")):
                    rounds.append(await _round(planner, scenario, job, kind, count, repeat))
                    print(json.dumps(rounds[-1]), file=sys.stderr, flush=True)
    finally:
        await planner.close()
    return {"machine": _machine(), "scenario": scenario.__dict__, "rounds": rounds}


async def _round(planner: EmbeddedEngine, scenario: Scenario, job: dict[str, Any], kind: str,
                 count: int, repeat: int) -> dict[str, Any]:
    result = ScenarioResult("raw", scenario)
    with Burners(kind, count) as burners:
        machine = await serve_people(planner.vllm_engine, planner, scenario, job, result)
        rate = burners.rate()
    summary = result.summary()
    return {"repeat": repeat, "burner": kind if count else "none", "burners": count,
            "burner_loops_per_s": rate, "aggregate_tok_s": summary["aggregate_tok_s"],
            "itl_p50_ms": summary["itl_p50_ms"], "ttft_p50_ms": summary["ttft_p50_ms"],
            "errors": summary["errors"], "busy_cores": machine["busy_cores"],
            "by_kind": machine["by_kind"]}


def _machine() -> dict[str, Any]:
    from bench.__main__ import machine

    found = machine()
    siblings = Path("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list")
    found["cpu0_siblings"] = siblings.read_text().strip() if siblings.exists() else ""
    return found


def markdown(found: dict[str, Any]) -> str:
    quiet = [r["aggregate_tok_s"] for r in found["rounds"] if not r["burners"]]
    base = sum(quiet) / len(quiet) if quiet else None
    lines = [f"# The raw engine beside busy cores ({found['machine'].get('cpu', '')}, "
             f"{found['machine'].get('cores')} cores; cpu0's siblings: "
             f"{found['machine'].get('cpu0_siblings') or 'none'})", "",
             f"{found['scenario']['users']} people, {found['scenario']['requests_per_user']} "
             f"answers each of {found['scenario']['output_tokens']} tokens, text.", "",
             "| round | burners | tok/s | to the quiet rounds' mean | gap p50 ms | first token "
             "p50 ms | engine core cores | busy cores | loops/s per burner |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in found["rounds"]:
        ratio = f"{r['aggregate_tok_s'] / base:.3f}" if base and r["aggregate_tok_s"] else ""
        lines.append(
            f"| {r['repeat'] + 1} | {r['burners']} {r['burner'] if r['burners'] else ''} | "
            f"{r['aggregate_tok_s']} | {ratio} | {r['itl_p50_ms']} | {r['ttft_p50_ms']} | "
            f"{r['by_kind'].get('engine core', 0)} | {r['busy_cores']} | "
            f"{r['burner_loops_per_s'] or ''} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="")
    parser.add_argument("--out", default="contention-out")
    parser.add_argument("--burners", default="0,4,8")
    parser.add_argument("--kinds", default="churn,spin")
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--answers", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-model-len", type=int, default=8192)
    parser.add_argument("--max-num-seqs", type=int, default=64)
    args = parser.parse_args()
    found = asyncio.run(run(args))
    out = Path(args.out)
    (out / "contention.json").write_text(json.dumps(found, indent=2))
    (out / "contention.md").write_text(markdown(found))
    print(markdown(found))


if __name__ == "__main__":
    main()
