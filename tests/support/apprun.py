"""The app as a separate process on 127.0.0.1, started from `app.py` with the tiny
checkpoint, and stopped by its process group (see `bench.procs`)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import free_port, start_in_group, stop_group, wait_until_ready

START_TIMEOUT_S = 360


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

    def wait_ready(self) -> None:
        """Until /healthz answers; raises `NotReady` with the log's tail if it never does."""
        wait_until_ready(self.process, lambda: health(self.url) is not None, name="the app",
                         timeout_s=START_TIMEOUT_S, log=self.log, every_s=1)

    def stop(self) -> None:
        stop_group(self.process)


def launch_app(checkpoint: Path, scratch: Path, *flags: str,
               env: dict[str, str] | None = None) -> RunningApp:
    """The app started with the tiny checkpoint and `flags`, not waited for."""
    port = free_port()
    environment = {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                   "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_TEMP_DIR": str(scratch / "gradio"),
                   "PYTHONUNBUFFERED": "1", **(env or {})}
    command = [sys.executable, "app.py", "--model", str(checkpoint), "--port", str(port),
               "--max-model-len", "4096", "--cpu-kv-cache-gib", "1", "--max-num-seqs", "16",
               "--cache-dir", str(scratch / "cache"), "--db-path", str(scratch / "answers.db"),
               *flags]
    log_path = scratch / "app.log"
    process = start_in_group(command, log_path, environment)
    return RunningApp(f"http://127.0.0.1:{port}", process, scratch, log_path)


def start_app(checkpoint: Path, scratch: Path, *flags: str,
              env: dict[str, str] | None = None) -> RunningApp:
    """The app started and answering /healthz."""
    app = launch_app(checkpoint, scratch, *flags, env=env)
    try:
        app.wait_ready()
    except BaseException:
        app.stop()
        raise
    return app
