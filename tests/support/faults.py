"""A running app's faults as a test sees them from outside: its health over HTTP, an
answer streaming in the background, and a stop by a signal mid-answer that must end
cleanly (`assert_stops_cleanly`). Used by the fault tests and by the server's own."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import psutil
import pytest

from tests.support.apprun import RunningApp
from tests.support.pageclient import PageClient, send

START_BOUND_S = 180.0  # a long answer's first token, on a loaded machine
STOP_BOUND_S = 40.0  # SIGTERM or Ctrl-C to a clean exit, an answer in flight
LONG = 4000  # max new tokens of an answer that is still streaming when the fault comes


def chat_text(chat: Any) -> str:
    return json.dumps(chat)


def in_background(function: Callable[..., Any], *args: Any) -> Future[Any]:
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(function, *args)
    pool.shutdown(wait=False)
    return future


def health(app: RunningApp) -> dict[str, Any]:
    """/healthz's body, whatever its status code."""
    try:
        return httpx.get(f"{app.url}/healthz", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return {}


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> float:
    """Polls `condition`; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds:g} s"
        time.sleep(0.05)
    return time.monotonic() - started


def wait_until_answering(app: RunningApp, answering: Future[Any]) -> None:
    """Waits until the engine runs the answer sent in the background. On a loaded machine
    the first token can take a while; an answer that ended early fails at once, saying why."""
    started = time.monotonic()
    while (health(app).get("running") or 0) < 1:
        if answering.done():
            pytest.fail(f"the answer ended before it was seen running: {_outcome(answering)}"
                        f"\n{app.log(40)}")
        if time.monotonic() - started > START_BOUND_S:
            pytest.fail(f"the answer did not start within {START_BOUND_S:g} s; /healthz: "
                        f"{health(app)}\n{app.log(40)}")
        time.sleep(0.05)
    time.sleep(0.5)  # a few tokens in


def _outcome(future: Future[Any]) -> str:
    error = future.exception()
    if error is not None:
        return repr(error)
    answered, chat = future.result()
    return f"{answered.raw!r:.1500} / chat {chat_text(chat)[-1500:]}"


def group_alive(pgid: int) -> list[int]:
    """The processes of the app's group that still run (zombies do not count)."""
    alive = []
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(process.pid) == pgid and process.info["status"] != "zombie":
                alive.append(process.pid)
    return alive


def assert_stops_cleanly(app: RunningApp, deliver: Callable[[subprocess.Popen[bytes]], None],
                         *, engine_processes_signalled: bool = False,
                         login: tuple[str, str] | None = None) -> None:
    """Starts a long answer, delivers the signal, and checks the exit: code 0 within the
    bound, every engine process gone, no traceback, no leaked resource.
    `engine_processes_signalled`: the signal reached vLLM's engine processes too. They then
    stop on their own, and when one was mid-step, vLLM's engine process prints its own
    traceback: that part is vLLM's, and the traceback is not checked. `login`: the
    password the app asks for."""
    client = PageClient(app.url, login=login)
    answering = in_background(send, client, "Tell a long story.", LONG)
    wait_until_answering(app, answering)
    logged_before = app.log_path.stat().st_size  # earlier faults' lines are not this stop's
    started = time.monotonic()
    deliver(app.process)
    try:
        code = app.process.wait(STOP_BOUND_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the app did not stop within {STOP_BOUND_S:g} s:\n{app.log()}")
    took = time.monotonic() - started
    with contextlib.suppress(Exception):
        answering.result(10)  # its stream ends with the app; it must not hang
    assert answering.done(), "the answer in flight still hangs after the app stopped"
    client.close()
    with app.log_path.open("rb") as log_file:
        log = log_file.read()[logged_before:].decode(errors="replace")
    print(f"stopped in {took:.1f} s")
    assert code == 0, f"exit code {code}:\n{app.log()}"
    if not engine_processes_signalled:
        assert "Traceback" not in log, log[-6000:]
    assert "leaked" not in log, log[-3000:]
    wait_for(lambda: not group_alive(app.process.pid), 10, "engine processes outlived the app")


def sigterm(process: subprocess.Popen[bytes]) -> None:
    """What a container runtime does: SIGTERM to the app's process only."""
    process.send_signal(signal.SIGTERM)


def sigint(process: subprocess.Popen[bytes]) -> None:
    """`kill -INT`: SIGINT to the app's process only."""
    process.send_signal(signal.SIGINT)


def ctrl_c(process: subprocess.Popen[bytes]) -> None:
    """What Ctrl-C in a terminal does: SIGINT to the whole foreground process group,
    vLLM's engine processes included."""
    os.killpg(process.pid, signal.SIGINT)
