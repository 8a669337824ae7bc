"""The measured paths, each started as people start it and stopped after:

- app: phi4ui's page with its embedded engine (`python app.py`);
- app_scaled: the scaled-out app (`python -m phi4ui serve --frontends N`: several page
  processes behind one load balancer with sticky sessions, on one port; by default each a
  direct client of one engine core, with `--extra-app-args "--scale-out server"` the HTTP
  clients of vLLM's server);
- server / server_api4: vLLM's OpenAI server (`vllm serve`), one API process or
  `--api-server-count N`;
- app_remote: phi4ui's page with the remote engine, on the one-process server.

(raw, the engine alone, runs in a process of its own: bench/raw.py.) `serving(path)`
yields where the clients go and what they speak.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import (
    ROOT,
    NotReady,
    Service,
    app_command,
    free_port,
    scaled_app_command,
    start,
    tree_rss,
    vllm_server_command,
)

OPENAI_PATHS = ("server", "server_api4")
APP_PATHS = ("app", "app_scaled", "app_remote")


@dataclass
class Target:
    """Where a path's clients go: `kind` "app" (the page) or "openai" (the server)."""

    kind: str
    url: str
    base_model: str = ""
    facts: dict[str, Any] = field(default_factory=dict)  # start times, memory


@dataclass(frozen=True)
class Setup:
    work: Path
    model: str
    app_args: list[str]
    max_model_len: int
    max_num_seqs: int
    api_servers: int = 4
    frontends: int = 4


@contextlib.contextmanager
def serving(path: str, setup: Setup) -> Iterator[Target]:
    """The path's server(s), started and ready; stopped when the block ends. Raises
    `NotReady` when they cannot start (the caller reports the path as skipped)."""
    if path == "app":
        with _app(setup) as target:
            yield target
    elif path == "app_scaled":
        with _served(start("app-scaled", scaled_app_command(
                setup.app_args, port := free_port(), setup.frontends), port, setup.work),
                ready="/healthz") as service:
            # Its page processes and vLLM's server are children of this one (to profile).
            yield Target("app", service.url, facts={"frontends": setup.frontends,
                                                    "tree_pid": service.process.pid})
    elif path in OPENAI_PATHS:
        with _vllm(setup, setup.api_servers if path == "server_api4" else 1) as target:
            yield target
    elif path == "app_remote":
        with _vllm(setup, 1) as server, _served(start("app-remote", app_command(
                ["--engine", "remote", "--base-url", server.url + "/v1"], port := free_port()),
                port, setup.work), ready="/healthz") as app:
            yield Target("app", app.url)
    else:
        raise ValueError(f"unknown path {path!r}")


@contextlib.contextmanager
def _served(service: Service, ready: str) -> Iterator[Service]:
    try:
        service.wait_for(ready, "ready")
        yield service
    finally:
        service.stop()


@contextlib.contextmanager
def _app(setup: Setup) -> Iterator[Target]:
    port = free_port()
    app = start("app", app_command(setup.app_args, port), port, setup.work)
    try:
        page_s = app.wait_for("/", "page")
        at_page = tree_rss(app.process.pid)
        ready_s = app.wait_for("/healthz", "engine_ready")
        target = Target("app", app.url, facts={
            "page_s": page_s, "engine_ready_s": ready_s, "rss_at_page": at_page,
            "rss_engine_loaded": tree_rss(app.process.pid), "pid": app.process.pid})
        yield target
        target.facts["rss_after_load_test"] = tree_rss(app.process.pid)
    finally:
        app.stop()


@contextlib.contextmanager
def _vllm(setup: Setup, api_servers: int) -> Iterator[Target]:
    from phi4ui.core.memory import gpu_memory
    from phi4ui.engines.model_source import ModelSource

    model = setup.model
    lora_rank = ModelSource(model, None, f"{model}/vision-lora", f"{model}/speech-lora", True,
                            4, "").max_lora_rank
    on_gpu = gpu_memory() is not None
    port = free_port()
    # On a CPU, vLLM would otherwise reserve most of the machine's memory for its KV cache;
    # this gives it what the app's engine gets (--cpu-kv-cache-gib 2).
    server = start(f"vllm-server-{api_servers}", vllm_server_command(
        model, port, setup.max_model_len, setup.max_num_seqs, dynamic_hd=4,
        lora_rank=lora_rank, enforce_eager=not on_gpu, api_servers=api_servers), port,
        setup.work, env=None if on_gpu else {"VLLM_CPU_KVCACHE_SPACE": "2"})
    with _served(server, "/health"):
        base = json.loads(subprocess.check_output(
            ["curl", "-s", f"{server.url}/v1/models"]))["data"][0]["id"]
        yield Target("openai", server.url, base, facts={
            "ready_s": server.milestones["ready"], "api_servers": api_servers})


def app_without_engine(work: Path) -> int:
    """The app's own memory: started with a remote engine that is not there."""
    port = free_port()
    app = start("app-no-engine", app_command(
        ["--engine", "remote", "--base-url", f"http://127.0.0.1:{free_port()}/v1"], port),
        port, work)
    try:
        app.wait_for("/", "page")
        time.sleep(2)
        return tree_rss(app.process.pid)
    finally:
        app.stop()


def run_clients(job: dict[str, Any], target: Target, path: str, work: Path,
                scenarios: list[dict[str, Any]], name: str = "") -> dict[str, Any]:
    """The job's people against `target`, in their client processes (bench/clients.py)."""
    return run_python(["-m", "bench.clients"], {
        **job, "target": target.kind, "path": path, "url": target.url,
        "base_model": target.base_model, "scenarios": scenarios}, work,
        f"clients-{name or path}")


def run_python(module: list[str], job: dict[str, Any], work: Path, name: str) -> dict[str, Any]:
    job_file, out_file = work / f"{name}-job.json", work / f"{name}-out.json"
    job_file.write_text(json.dumps(job))
    subprocess.run([sys.executable, *module, str(job_file), str(out_file)], cwd=ROOT,
                   check=True)
    return dict(json.loads(out_file.read_text()))


__all__ = ["NotReady", "Setup", "Target", "app_without_engine", "run_clients", "run_python",
           "serving"]
