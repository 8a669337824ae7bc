"""Faults a person can meet, on real engines and a real app process (tests/apprun.py):
the embedded engine's process killed, the page's connection dropped mid-answer, a remote
vLLM server killed and started again, and the app stopped by SIGTERM or Ctrl-C while it
answers. Each test checks what the person is told and that the next message is answered.

One app per class. The remote class runs on the tests' shared vLLM server, which its tests
kill and start again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support.apprun import RunningApp, start_app
from tests.support.pageclient import API, PageClient, chain, send, settings
from tests.support.vllm_server import VllmServer

pytestmark = pytest.mark.engine
DETECT_BOUND_S = 2.0  # a dead engine shows in /healthz (and at the next tick, in the page)
RESTART_BOUND_S = 300.0  # a restart loads the model again: tens of seconds on a busy CPU
START_BOUND_S = 180.0  # a long answer's first token, on a loaded machine
STOP_BOUND_S = 40.0  # SIGTERM or Ctrl-C to a clean exit, an answer in flight
LONG = 4000  # max new tokens of an answer that is still streaming when the fault comes
REMEMBER = "Please remember the word bluekiwi."


# ---------------------------------------------------------------- the page, as the browser

def status_line(client: PageClient) -> str:
    """The page's engine status line, as the timer's tick refreshes it."""
    status_id = client.component("engine-status")["id"]
    refresh = next(d for d in client.dependencies() if status_id in d["outputs"])
    result = client.call(refresh, [])
    assert result.success, result.raw
    return str(result.data[refresh["outputs"].index(status_id)])


def chat_text(chat: Any) -> str:
    return json.dumps(chat)


def in_background(function: Callable[..., Any], *args: Any) -> Future[Any]:
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(function, *args)
    pool.shutdown(wait=False)
    return future


# ---------------------------------------------------------------- the app, from outside

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


def engine_core_pids(app: RunningApp) -> list[int]:
    children = psutil.Process(app.process.pid).children(recursive=True)
    return [child.pid for child in children
            if "EngineCore" in " ".join(_cmdline(child)) or "EngineCore" in child.name()]


def _cmdline(process: psutil.Process) -> list[str]:
    with contextlib.suppress(psutil.Error):
        return process.cmdline()
    return []


def group_alive(pgid: int) -> list[int]:
    """The processes of the app's group that still run (zombies do not count)."""
    alive = []
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(process.pid) == pgid and process.info["status"] != "zombie":
                alive.append(process.pid)
    return alive


def assert_stops_cleanly(app: RunningApp, deliver: Callable[[subprocess.Popen[bytes]], None],
                         *, engine_processes_signalled: bool = False) -> None:
    """Starts a long answer, delivers the signal, and checks the exit: code 0 within the
    bound, every engine process gone, no traceback, no leaked resource.
    `engine_processes_signalled`: the signal reached vLLM's engine processes too. They then
    stop on their own, and when one was mid-step, vLLM's engine process prints its own
    traceback: that part is vLLM's, and the traceback is not checked."""
    client = PageClient(app.url)
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


# ---------------------------------------------------------------- the embedded engine

class TestEmbeddedEngine:
    @pytest.fixture(scope="class")
    @classmethod
    def app(cls, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[RunningApp]:
        running = start_app(checkpoint, tmp_path_factory.mktemp("faults-embedded"))
        yield running
        running.stop()

    def test_a_killed_engine_is_reported_restarted_and_the_conversation_goes_on(self, app):
        client = PageClient(app.url)
        answered, _ = send(client, REMEMBER)
        assert answered.success and "interrupted" not in answered.raw, answered.raw

        interrupted = in_background(send, client, "Tell a long story.", LONG)
        wait_until_answering(app, interrupted)
        [pid] = engine_core_pids(app)
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        detected = wait_for(lambda: health(app).get("state") == "restarting", DETECT_BOUND_S,
                            "the dead engine was not reported")
        answer, chat = interrupted.result(30)
        assert answer.success and "Traceback" not in answer.raw
        told = chat_text(chat)
        assert "Answer interrupted" in told
        assert "The engine stopped while answering; it is restarting" in told
        assert "press Retry in a moment" in told
        body = health(app)
        assert body["state"] == "restarting" and "killed by SIGKILL" in body["message"]
        line = status_line(client)
        assert "The engine stopped and is restarting" in line and "SIGKILL" in line
        refused, _ = send(client, "Are you back?")
        assert "restarting" in refused.text and "send again in a moment" in refused.text

        recovered = wait_for(lambda: health(app).get("state") == "ready", RESTART_BOUND_S,
                             "the engine was not restarted")
        print(f"death reported after {detected:.2f} s; ready again "
              f"{time.monotonic() - killed_at:.1f} s after the kill")
        assert engine_core_pids(app) not in ([], [pid])
        assert status_line(client) == ""
        answered, chat = send(client, "What word did I ask you to remember?")
        assert answered.success and "interrupted" not in chat_text(chat[-2:]), answered.raw
        # The answer was planned from the whole conversation, kept through the restart.
        assert REMEMBER in chat_text(chat) and "Tell a long story." in chat_text(chat)
        assert chat_text(chat).count("Answer interrupted") == 1
        assert recovered < RESTART_BOUND_S
        client.close()

    def test_a_dropped_page_connection_stops_its_answer_and_the_next_is_answered(self, app):
        client = PageClient(app.url)
        accept, answer, finish = chain(client)
        assert client.call(accept, [{"text": "Tell a long story.", "files": []}, None,
                                    "Be brief.", None]).success
        body = {"data": [None, None, *settings(LONG)], "fn_index": answer["id"],
                "session_hash": client.session_hash, "event_data": None,
                "trigger_id": answer["targets"][0][0]}
        assert client.http.post(f"{API}/queue/join", json=body).status_code == 200
        with httpx.Client(base_url=app.url, cookies=client.http.cookies, timeout=60) as sse, \
                sse.stream("GET", f"{API}/queue/data",
                           params={"session_hash": client.session_hash}) as stream:
            for line in stream.iter_lines():
                if '"process_generating"' in line:
                    break  # the answer streams: drop the connection now
        # The engine request ends with the connection; nothing keeps generating.
        wait_for(lambda: health(app).get("running") == 0, 15, "the answer kept generating")
        # The browser runs the finish step after a failed answer too.
        finished = client.call(finish, [None, None])
        assert finished.success and "Stopped" in chat_text(finished.data[0])
        answered, chat = send(client, "Shorter, please.")
        assert answered.success and "interrupted" not in chat_text(chat), answered.raw
        assert "Tell a long story." in chat_text(chat)
        client.close()

    def test_sigterm_mid_answer_stops_cleanly(self, app):
        assert_stops_cleanly(app, sigterm)


def test_ctrl_c_mid_answer_stops_cleanly(checkpoint, tmp_path):
    app = start_app(checkpoint, tmp_path)
    try:
        assert_stops_cleanly(app, ctrl_c, engine_processes_signalled=True)
    finally:
        app.stop()


# ---------------------------------------------------------------- a remote server

class TestRemoteServer:
    @pytest.fixture()
    def server(self, killable_vllm_server: VllmServer) -> VllmServer:
        return killable_vllm_server

    @pytest.fixture(scope="class")
    @classmethod
    def app(cls, checkpoint: Path, vllm_server: VllmServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
        running = start_app(checkpoint, tmp_path_factory.mktemp("faults-remote"),
                            *vllm_server.app_flags(), "--connect-timeout", "1")
        yield running
        running.stop()

    def test_a_server_that_dies_and_comes_back_is_used_again(self, app, server):
        client = PageClient(app.url)
        answered, _ = send(client, REMEMBER)
        assert answered.success and "interrupted" not in answered.raw, answered.raw

        interrupted = in_background(send, client, "Tell a long story.", LONG)
        wait_until_answering(app, interrupted)
        threading.Thread(target=server.kill).start()
        answer, chat = interrupted.result(30)
        told = chat_text(chat)
        assert "Answer interrupted" in told and "Traceback" not in answer.raw
        assert f"Lost the connection to the server at {server.base_url}" in told
        assert "send again once the server is back" in told
        wait_for(lambda: health(app).get("state") == "failed", 5, "the lost server not shown")
        assert "connection" in health(app)["message"]
        assert "The engine is unavailable" in status_line(client)
        refused, chat = send(client, "Are you there?")
        assert "connection refused" in chat_text(chat) + refused.text

        server.start()  # the same address
        back = wait_for(lambda: health(app).get("state") == "ready", 60,
                        "the server that came back was not used again")
        print(f"ready again {back:.1f} s after the server answered")
        assert status_line(client) == ""
        answered, chat = send(client, "What word did I ask you to remember?")
        assert answered.success and "interrupted" not in chat_text(chat[-2:]), answered.raw
        assert REMEMBER in chat_text(chat)
        client.close()

    def test_a_server_that_dies_while_idle_shows_as_unavailable(self, app, server):
        server.kill()
        try:
            wait_for(lambda: health(app).get("state") == "failed", 20,
                     "a server gone while idle still shows as ready")
        finally:
            server.start()
        wait_for(lambda: health(app).get("state") == "ready", 60, "not used again")

    def test_sigint_mid_answer_stops_cleanly(self, app):
        assert_stops_cleanly(app, sigint)
