"""A real vLLM OpenAI-compatible server in a subprocess, for tests and benchmarks.

It serves the tiny random-weight checkpoint on 127.0.0.1 with its adapters
registered as `vision` and `speech`, and is stopped through its process group,
which holds the engine-core and worker processes too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.procs import NotReady, answers_ok, free_port, start_in_group, wait_until_ready
from phi4ui.engines.cpu_dtype import engine_dtype
from phi4ui.engines.cpu_priority import ENGINE_NICE
from tests.support.process_groups import remove_when_gone, shared_memory_of

READY_TIMEOUT_S = 300
STREAM_INTERVAL = 3  # the tests' shared server's `--stream-interval`
MAX_NUM_SEQS = 16  # and its `--max-num-seqs`: answers it runs at once


def server_command(checkpoint: Path, port: int, *, max_model_len: int = 4096,
                   dynamic_hd: int | None = 4, extra: Sequence[str] = ()) -> list[str]:
    """`dynamic_hd` None: the server takes it from the checkpoint's preprocessor_config.json,
    as `vllm serve` started from the model card does."""
    tiling = ([] if dynamic_hd is None
              else ["--mm-processor-kwargs", json.dumps({"dynamic_hd": dynamic_hd})])
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(checkpoint), "--load-format", "dummy", "--trust-remote-code",
        "--dtype", engine_dtype("auto", has_gpu=False),
        "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", str(max_model_len), "--max-num-batched-tokens", "8192",
        "--enable-lora", "--max-lora-rank", "8", "--max-loras", "2",
        "--lora-modules", f"vision={checkpoint}/vision-lora", f"speech={checkpoint}/speech-lora",
        "--limit-mm-per-prompt", json.dumps({"image": 2, "audio": 2}),
        *tiling,
        "--enforce-eager", "--max-num-seqs", str(MAX_NUM_SEQS),
        # The worker inside the engine-core process where vLLM allows it (not on a CPU,
        # whose platform starts a worker process of its own anyway).
        "--distributed-executor-backend", "uni", "--disable-uvicorn-access-log", *extra,
    ]


class VllmServer:
    def __init__(self, checkpoint: Path, log_path: Path, port: int | None = None, *,
                 dynamic_hd: int | None = 4, extra: Sequence[str] = (),
                 nice: int = ENGINE_NICE) -> None:
        self.checkpoint = checkpoint
        # Below its clients on the CPU, as the app runs the embedded engine there: on a
        # 2-core machine a server at the same rank starved the app under test (CI saw the
        # app's event loop wait 14 s for a CPU while the server wrote 4,000 tokens).
        self.nice = nice
        self.dynamic_hd = dynamic_hd
        self.extra = tuple(extra)  # more `vllm serve` flags
        self.log_path = log_path
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._shared_memory: set[Path] = set()

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def answers(self) -> bool:
        """Whether the server runs and answers /v1/models now."""
        return (self.process is not None and self.process.poll() is None
                and answers_ok(f"{self.base_url}/models"))

    def app_flags(self) -> tuple[str, ...]:
        """The app's flags to run on this server as its remote engine."""
        tiling = () if self.dynamic_hd is None else ("--dynamic-hd", str(self.dynamic_hd))
        return ("--engine", "remote", "--base-url", self.base_url, *tiling)

    def start(self) -> None:
        """Starts the server and waits until it answers /v1/models."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Starts the server's process, not waiting for it (see `wait_ready`)."""
        env = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
        command = server_command(self.checkpoint, self.port, dynamic_hd=self.dynamic_hd,
                                 extra=self.extra)
        self.process = start_in_group(command, self.log_path, env, append=True, nice=self.nice)

    def wait_ready(self) -> None:
        """Waits until the launched server answers /v1/models; stops it if it never does."""
        assert self.process is not None, "launch() first"
        try:
            wait_until_ready(self.process, self.answers, name="vLLM",
                             timeout_s=READY_TIMEOUT_S, log=self.log_tail)
        except NotReady:
            self.stop()
            raise
        self._shared_memory = self._shared_memory_files()

    def kill(self) -> None:
        """Ends every process of the server at once, as a crash would."""
        # Frozen first, so that nothing more is sent while its shared memory is looked up.
        self._signal_group(signal.SIGSTOP)
        shared = self._shared_memory | self._shared_memory_files()
        self._signal_group(signal.SIGKILL)
        self._wait(10)
        self._clean_up(shared)

    def _signal_group(self, signum: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def stop(self) -> None:
        """Asks the API server to shut down (it stops its engine processes), then kills."""
        if self.process is None:
            return
        shared = self._shared_memory | self._shared_memory_files()
        self.process.terminate()
        if not self._wait(30):
            self.kill()
            return
        self._clean_up(shared)

    def _clean_up(self, shared: set[Path]) -> None:
        if self.process is not None:
            remove_when_gone(self.process.pid, shared)

    def _shared_memory_files(self) -> set[Path]:
        return set() if self.process is None else shared_memory_of(self.process.pid)

    def _wait(self, seconds: float) -> bool:
        if self.process is None:
            return True
        try:
            self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def metrics(self) -> str:
        return httpx.get(f"{self.root_url}/metrics", timeout=5).text

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
