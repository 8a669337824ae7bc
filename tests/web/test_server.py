"""The server as deployed: login, upload cap, readiness, secrets kept out of sight, and a
clean stop by Ctrl-C while it answers.

One app subprocess on 127.0.0.1 with the real tiny engine, a login, a small
upload cap and a (dummy) remote API key in its environment. Ctrl-C ends it, so that test
comes last.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.apprun import launch_app
from tests.support.faults import assert_stops_cleanly, ctrl_c

pytestmark = pytest.mark.engine
PASSWORD = "correct-horse-battery"
API_KEY = "sk-test-never-shown-0123456789"


@pytest.fixture(scope="module")
def app(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    env = {"PHI4UI_AUTH": f"alice:{PASSWORD}", "PHI4UI_API_KEY": API_KEY}
    running = launch_app(checkpoint, tmp_path_factory.mktemp("server"), "--upload-max-mb",
                         "0.5", env=env)
    readiness = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert running.process.poll() is None, running.log()
            try:
                response = httpx.get(running.url + "/healthz", timeout=2)
                readiness.append((response.status_code, response.json()["state"]))
                if response.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield {"url": running.url, "log": running.log_path, "readiness": readiness,
               "running": running}
    finally:
        running.stop()


def test_readiness_is_503_while_loading_then_200(app):
    states = app["readiness"]
    assert (503, "loading") in states
    assert states[-1] == (200, "ready")


def test_wrong_password_is_refused_and_the_right_one_accepted(app):
    with httpx.Client(base_url=app["url"], timeout=10) as client:
        assert client.get("/config").status_code == 401
        wrong = client.post("/login", data={"username": "alice", "password": "guess"})
        assert wrong.status_code >= 400
        assert client.get("/config").status_code == 401
        right = client.post("/login", data={"username": "alice", "password": PASSWORD})
        assert right.status_code == 200
        assert client.get("/config").status_code == 200


def test_uploads_over_the_cap_are_refused_by_the_server(app):
    with httpx.Client(base_url=app["url"], timeout=10) as client:
        client.post("/login", data={"username": "alice", "password": PASSWORD})
        small = client.post("/gradio_api/upload", files={"files": ("a.wav", b"x" * 1000)})
        assert small.status_code == 200
        big = client.post("/gradio_api/upload", files={"files": ("b.wav", b"x" * 600_000)})
        assert big.status_code == 413


def test_no_secret_reaches_the_page_or_the_log(app):
    with httpx.Client(base_url=app["url"], timeout=10) as client:
        client.post("/login", data={"username": "alice", "password": PASSWORD})
        page = client.get("/").text + client.get("/config").text
    log = app["log"].read_text()
    for secret in (PASSWORD, API_KEY):
        assert secret not in page
        assert secret not in log



def test_an_idle_connection_outlives_a_clients_keep_alive(app):
    """The server keeps an idle keep-alive connection open longer than clients do (httpx's
    expiry, and Uvicorn's own default, is 5 s): the client, not the server, closes it, so
    a request sent on it as it idles out is never cut off."""
    import http.client
    from urllib.parse import urlsplit

    address = urlsplit(app["url"])
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        assert connection.getresponse().read()
        assert connection.sock is not None
        local = connection.sock.getsockname()
        time.sleep(6.5)  # idle past 5 s
        connection.request("GET", "/healthz")  # on the same socket: it is still open
        response = connection.getresponse()
        assert response.status == 200 and response.read()
        assert connection.sock is not None and connection.sock.getsockname() == local
    finally:
        connection.close()


def test_ctrl_c_mid_answer_stops_cleanly(app):
    """Ctrl-C in the terminal that runs the app: SIGINT to its whole process group, the
    embedded engine's processes included. Last: the app is gone after it."""
    assert_stops_cleanly(app["running"], ctrl_c, engine_processes_signalled=True,
                         login=("alice", PASSWORD))
