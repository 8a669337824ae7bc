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
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from bench.procs import NotReady
from tests.support.apprun import launch_app

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("PHI4UI_CHROMIUM", "/usr/lib/chromium/chromium"))
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
APP_DB = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
            ) -> Iterator[str]:
    """The app's address. PHI4UI_BROWSER_APP_URL points the tests at an app already running
    with the same flags (to iterate on the tests without waiting for the engine each time)."""
    if given := os.environ.get("PHI4UI_BROWSER_APP_URL"):
        yield given.rstrip("/")
        return
    checkpoint: Path = request.getfixturevalue("checkpoint")
    app = launch_app(checkpoint, tmp_path_factory.mktemp("app"))
    try:
        _yield_the_cpu(app.process.pid)
        try:
            app.wait_ready()
        except NotReady as not_ready:
            pytest.fail(str(not_ready))
        request.config.stash[APP_DB] = app.db_path
        yield app.url
    finally:
        app.stop()


@pytest.fixture(scope="session")
def app_db(app_url: str, request: pytest.FixtureRequest) -> Path:
    """The record of the app the tests drive, for tests that seed it directly; with
    PHI4UI_BROWSER_APP_URL, PHI4UI_BROWSER_APP_DB names its --db-path."""
    if given := os.environ.get("PHI4UI_BROWSER_APP_DB"):
        return Path(given)
    if APP_DB not in request.config.stash:
        pytest.skip("set PHI4UI_BROWSER_APP_DB to the --db-path of the app at "
                    "PHI4UI_BROWSER_APP_URL")
    return request.config.stash[APP_DB]


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
