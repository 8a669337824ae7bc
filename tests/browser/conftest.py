"""The app as a person meets it: the real server on 127.0.0.1 running the tiny
random-weight engine, driven by Debian's Chromium through Playwright.

One app process serves the whole browser session (the engine takes a minute to
start on a CPU); each test gets a fresh browser context, so its own Gradio session.
Every page is watched for requests to any host but the app's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.support.apprun import free_port, health

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("PHI4UI_CHROMIUM", "/usr/lib/chromium/chromium"))
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
APP_START_TIMEOUT_S = 360


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
            ) -> Iterator[str]:
    """The app's address. PHI4UI_BROWSER_APP_URL points the tests at an app already running
    with the same flags (to iterate on the tests without waiting for the engine each time)."""
    if given := os.environ.get("PHI4UI_BROWSER_APP_URL"):
        yield given.rstrip("/")
        return
    checkpoint: Path = request.getfixturevalue("checkpoint")
    scratch = tmp_path_factory.mktemp("app")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_TEMP_DIR": str(scratch / "gradio"),
           "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "app.py", "--model", str(checkpoint), "--port", str(port),
               "--max-model-len", "4096", "--cpu-kv-cache-gib", "1", "--max-num-seqs", "16",
               "--cache-dir", str(scratch / "cache"), "--db-path", str(scratch / "answers.db")]
    log_path = scratch / "app.log"
    with log_path.open("wb") as log:
        # Its own process group, so that stopping it also stops vLLM's engine processes.
        app = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        _yield_the_cpu(app.pid)
        _wait_ready(url, app, log_path)
        yield url
    finally:
        _stop(app)


def _yield_the_cpu(pid: int) -> None:
    """Runs the app at the lowest CPU priority. Here Chromium shares the machine's cores
    with vLLM's CPU engine, which keeps them all busy while it writes; a person's browser
    runs on their own machine. Starved, Chromium handled a click on Stop only after the
    answer had ended. Linux schedules each session as one group (autogroup) and the app
    runs in its own session, so the group's niceness is set too; the processes' own only
    matters within it."""
    os.setpriority(os.PRIO_PGRP, pid, 19)
    autogroup = Path(f"/proc/{pid}/autogroup")
    with contextlib.suppress(OSError):  # no autogroups here, or not ours to change
        autogroup.write_text("19")


def _wait_ready(url: str, app: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + APP_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if app.poll() is not None:
            pytest.fail(f"the app exited with {app.returncode}:\n{_tail(log_path)}")
        if health(url):
            return
        time.sleep(1)
    pytest.fail(f"the app was not ready in {APP_START_TIMEOUT_S} s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stop(app: subprocess.Popen[bytes]) -> None:
    if app.poll() is not None:
        return
    os.killpg(app.pid, signal.SIGTERM)
    try:
        app.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(app.pid, signal.SIGKILL)
        app.wait(timeout=10)


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spoken sentence as 16-bit 48 kHz mono WAV: what the fake microphone plays."""
    folder = tmp_path_factory.mktemp("microphone")
    raw, wav = folder / "raw.wav", folder / "speech-48k.wav"
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        pytest.skip("the microphone test needs espeak-ng and sox: apt-get install espeak-ng sox")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw),
                    "Please describe the picture of the house."], check=True)
    subprocess.run(["sox", str(raw), "-r", "48000", "-c", "1", "-b", "16", str(wav)], check=True)
    return wav


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any],
                             speech_wav: Path) -> dict[str, Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set PHI4UI_CHROMIUM)")
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": [
            # Any request to another host fails at once, and is caught by `foreign_requests`.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={speech_wav}",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": LAPTOP,
            "permissions": ["microphone", "camera", "clipboard-read", "clipboard-write"]}


@pytest.fixture()
def foreign_requests() -> Iterator[list[str]]:
    """URLs the pages of a test asked for on any host but 127.0.0.1; must stay empty."""
    seen: list[str] = []
    yield seen
    assert not seen, f"the page made requests to other hosts: {seen}"


def watch_requests(context: Any, seen: list[str]) -> None:
    def check(request: Any) -> None:
        parts = urlparse(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname != "127.0.0.1":
            seen.append(request.url)

    context.on("request", check)


@pytest.fixture()
def context(context: Any, foreign_requests: list[str]) -> Any:
    watch_requests(context, foreign_requests)
    return context


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture()
def chat(page: Any, app_url: str, screenshots: Path) -> Any:
    """The page opened at laptop size, the engine ready."""
    from tests.browser.chatpage import ChatPage

    return ChatPage(page, app_url, screenshots).open()
