"""Faults a person can meet, on real engines and a real app process (tests/apprun.py):
the embedded engine's process killed, the page's connection dropped mid-answer, a remote
vLLM server killed and started again, and the app stopped by SIGTERM or SIGINT while it
answers. Each test checks what the person is told and that the next message is answered.
(Ctrl-C in a terminal is tested on the embedded app of `tests/web/test_server.py`, whose
last test it is: each stop costs an app start.)

One app per class. The remote class runs on the tests' shared vLLM server, which its tests
kill and start again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.apprun import RunningApp, start_app
from tests.support.faults import (
    LONG,
    assert_stops_cleanly,
    chat_text,
    health,
    in_background,
    sigint,
    sigterm,
    wait_for,
    wait_until_answering,
)
from tests.support.pageclient import API, PageClient, chain, message, send, send_data
from tests.support.vllm_server import VllmServer

pytestmark = pytest.mark.engine
DETECT_BOUND_S = 2.0  # a dead engine shows in /healthz (and at the next tick, in the page)
RESTART_BOUND_S = 300.0  # a restart loads the model again: tens of seconds on a busy CPU
REMEMBER = "Please remember the word bluekiwi."


# ---------------------------------------------------------------- the page, as the browser

def status_line(client: PageClient) -> str:
    """The page's engine status line, as the timer's tick refreshes it."""
    status_id = client.component("engine-status")["id"]
    refresh = next(d for d in client.dependencies() if status_id in d["outputs"])
    result = client.call(refresh, [None])
    assert result.success, result.raw
    return str(result.data[refresh["outputs"].index(status_id)])


# ---------------------------------------------------------------- the app, from outside

def engine_core_pids(app: RunningApp) -> list[int]:
    children = psutil.Process(app.process.pid).children(recursive=True)
    return [child.pid for child in children
            if "EngineCore" in " ".join(_cmdline(child)) or "EngineCore" in child.name()]


def _cmdline(process: psutil.Process) -> list[str]:
    with contextlib.suppress(psutil.Error):
        return process.cmdline()
    return []


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
        send_step, _ = chain(client)
        body = {"data": send_data(message("Tell a long story."), LONG),
                "fn_index": send_step["id"], "session_hash": client.session_hash,
                "event_data": None, "trigger_id": send_step["targets"][0][0]}
        assert client.http.post(f"{API}/queue/join", json=body).status_code == 200
        with httpx.Client(base_url=app.url, cookies=client.http.cookies, timeout=60) as sse, \
                sse.stream("GET", f"{API}/queue/data",
                           params={"session_hash": client.session_hash}) as stream:
            for line in stream.iter_lines():
                if '"process_generating"' in line:
                    break  # the answer streams: drop the connection now
        # The engine request ends with the connection; nothing keeps generating.
        wait_for(lambda: health(app).get("running") == 0, 15, "the answer kept generating")
        # The answer ended with the connection, noted as stopped; the next one is answered.
        answered, chat = send(client, "Shorter, please.")
        assert answered.success and "interrupted" not in chat_text(chat), answered.raw
        assert "Tell a long story." in chat_text(chat) and "Stopped" in chat_text(chat)
        client.close()

    def test_sigterm_mid_answer_stops_cleanly(self, app):
        assert_stops_cleanly(app, sigterm)


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
