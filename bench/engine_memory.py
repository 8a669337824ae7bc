"""What makes the CPU engine's memory grow: steps of new sizes, against oneDNN's cache.

    python -m bench.engine_memory --out DIR
    python -m bench.engine_memory --capacities default,16,256 --shapes 400 --out DIR

For each capacity of oneDNN's primitive cache (`ONEDNN_PRIMITIVE_CACHE_CAPACITY`; `default`
leaves it unset, which is oneDNN's 1,024), a process of its own runs vLLM's `LLM` on the
tiny checkpoint, engine and worker in that process, with tcmalloc as the app gives it:
prompts of distinct lengths one at a time (each a step of a new size), the resident memory
after every 50; then the first 100 lengths again; then timed rounds of 64 prompts of random
lengths answered together. Writes `<out>/engine-memory.json` and `<out>/engine-memory.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.__main__ import machine, versions
from bench.procs import ROOT
from phi4ui.engines.cpu_allocator import preload_tcmalloc
from phi4ui.engines.cpu_primitive_cache import VARIABLE

ROUNDS = 4


def measure(shapes: int, seed: int) -> dict[str, Any]:
    """Runs in the child process: the capacity is in its environment from the start."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the worker's memory is this process's
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    import psutil
    from vllm import LLM, SamplingParams

    from phi4ui.tinymodel import TINY, ensure_checkpoint

    folder = ensure_checkpoint(Path(tempfile.gettempdir()) / "phi4ui-bench-checkpoints", TINY,
                               dynamic_hd=4)
    llm = LLM(model=str(folder), trust_remote_code=True, load_format="dummy", dtype="float32",
              max_model_len=4096, max_num_seqs=64, enforce_eager=True, enable_lora=True,
              max_lora_rank=8, limit_mm_per_prompt={"image": 1, "audio": 1})
    rng = random.Random(seed)

    def mib() -> int:
        return round(psutil.Process().memory_info().rss / 2**20)

    def prompt(length: int) -> Any:  # vLLM's TokensPrompt
        return {"prompt_token_ids": [rng.randrange(1000, 100_000) for _ in range(length)]}

    loaded = mib()
    lengths = rng.sample(range(20, 4000), shapes)
    after: list[tuple[int, int]] = []
    for done, length in enumerate(lengths, start=1):
        llm.generate([prompt(length)], SamplingParams(max_tokens=2), use_tqdm=False)
        if done % 50 == 0:
            after.append((done, mib()))
    for length in lengths[:100]:
        llm.generate([prompt(length)], SamplingParams(max_tokens=2), use_tqdm=False)
    repeated = mib()
    rounds = []
    for _ in range(ROUNDS):
        prompts = [prompt(rng.randrange(20, 2000)) for _ in range(64)]
        params = [SamplingParams(max_tokens=rng.randrange(16, 128), ignore_eos=True)
                  for _ in range(64)]
        started = time.perf_counter()
        llm.generate(prompts, params, use_tqdm=False)
        rounds.append(round(time.perf_counter() - started, 2))
    return {"loaded_mib": loaded, "after_distinct_lengths": after,
            "after_100_repeated_mib": repeated, "rounds_s": rounds, "end_mib": mib()}


def run_child(capacity: str, shapes: int, seed: int) -> dict[str, Any]:
    environ = {k: v for k, v in os.environ.items() if k != VARIABLE}
    if capacity != "default":
        environ[VARIABLE] = capacity
    tcmalloc = preload_tcmalloc(environ)  # as the app preloads it for its engine
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        subprocess.run([sys.executable, "-m", "bench.engine_memory", "--child", result.name,
                        "--shapes", str(shapes), "--seed", str(seed)],
                       cwd=ROOT, env=environ, check=True, stdout=subprocess.DEVNULL)
        return {"capacity": capacity, "tcmalloc": bool(tcmalloc),
                **json.loads(Path(result.name).read_text())}


def described(found: dict[str, Any]) -> str:
    return (f"{found['cores']} cores ({found['cpu']}), {found['memory_gib']} GiB, GPU: "
            f"{found['gpu'] or 'none'}; Python {found['python']}")


def markdown(report: dict[str, Any]) -> str:
    lines = ["## The CPU engine's memory, by oneDNN's primitive cache", "",
             f"Machine: {described(report['machine'])}. Command: `{report['command']}`.", "",
             "| capacity | loaded | growth after " + ", ".join(
                 str(done) for done, _ in report["runs"][0]["after_distinct_lengths"])
             + " distinct lengths (MiB) | the first 100 again | rounds of 64 prompts (s) |",
             "|---|---|---|---|---|"]
    for run in report["runs"]:
        base = run["loaded_mib"]
        growth = ", ".join(f"+{mib - base}" for _, mib in run["after_distinct_lengths"])
        lines.append(f"| {run['capacity']} | {base} MiB | {growth} | "
                     f"+{run['after_100_repeated_mib'] - base} | "
                     f"{', '.join(str(s) for s in run['rounds_s'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacities", default="default,16,256")
    parser.add_argument("--shapes", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        Path(args.child).write_text(json.dumps(measure(args.shapes, args.seed)))
        return
    runs = [run_child(capacity, args.shapes, args.seed)
            for capacity in args.capacities.split(",")]
    report = {"command": "python -m bench.engine_memory " + " ".join(sys.argv[1:]),
              "machine": machine(), "versions": versions(), "runs": runs}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "engine-memory.json").write_text(json.dumps(report, indent=1))
    (out / "engine-memory.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
