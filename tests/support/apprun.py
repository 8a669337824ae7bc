"""The app as a separate process on 127.0.0.1, started from `app.py` with the tiny
checkpoint, and stopped by its process group."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 360


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def health(url: str) -> dict[str, Any] | None:
    """The app's /healthz body, or None while it does not answer 200."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen[bytes]
    scratch: Path
    log_path: Path

    @property
    def db_path(self) -> Path:
        return self.scratch / "answers.db"

    @property
    def gradio_dir(self) -> Path:
        return self.scratch / "gradio"

    def log(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_app(checkpoint: Path, scratch: Path, *flags: str,
              env: dict[str, str] | None = None) -> RunningApp:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                   "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_TEMP_DIR": str(scratch / "gradio"),
                   "PYTHONUNBUFFERED": "1", **(env or {})}
    command = [sys.executable, "app.py", "--model", str(checkpoint), "--port", str(port),
               "--max-model-len", "4096", "--cpu-kv-cache-gib", "1", "--max-num-seqs", "16",
               "--cache-dir", str(scratch / "cache"), "--db-path", str(scratch / "answers.db"),
               *flags]
    log_path = scratch / "app.log"
    with log_path.open("wb") as log:
        # Its own process group, so that stopping it also stops vLLM's engine processes.
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    app = RunningApp(url, process, scratch, log_path)
    try:
        _wait_ready(app)
    except BaseException:
        app.stop()
        raise
    return app


def _wait_ready(app: RunningApp) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(f"the app exited with {app.process.returncode}:\n{app.log()}")
        if health(app.url):
            return
        time.sleep(1)
    raise RuntimeError(f"the app was not ready in {START_TIMEOUT_S} s:\n{app.log()}")
