"""The pages' heartbeat streams, served by `LeanHeartbeats` over plain HTTP on 127.0.0.1:
Gradio's stream and clean-up, with far fewer objects held per open page.

The app is the real server (`build_server`) served by uvicorn in a thread, its engine the
remote one pointed at a closed port (no model needed), so this process's heap is the
server's and can be counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bench.procs import free_port
from phi4ui.engines import build_engine
from phi4ui.settings import load_settings
from phi4ui.web.heartbeats import LeanHeartbeats
from phi4ui.web.server import _gradio_app, build_server
from tests.support.threaded_server import served_in_thread

OPEN_PAGES = 30
# Through the framework's layers a heartbeat held about 250 objects; Gradio's stream
# itself (its tasks and waits) and uvicorn's connection need about 100.
MAX_OBJECTS_PER_PAGE = 170


@contextlib.contextmanager
def serve(scratch: Path) -> Iterator[tuple[str, FastAPI, asyncio.AbstractEventLoop]]:
    settings = load_settings(["--engine", "remote", "--base-url",
                              f"http://127.0.0.1:{free_port()}/v1", "--connect-timeout", "0.5",
                              "--db-path", str(scratch / "answers.db")], environ={})
    app = build_server(settings, build_engine(settings))
    # Up, and settled: the app freezes what it loaded once its engine start has ended
    # (here, failed).
    with served_in_thread(app, ready=lambda url: gc.get_freeze_count() > 0) as served:
        yield served.url, app, served.loop


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, FastAPI, asyncio.AbstractEventLoop]]:
    with serve(tmp_path_factory.mktemp("heartbeats")) as running:
        yield running


def heartbeat_url(url: str, session_hash: str) -> str:
    return f"{url}/gradio_api/heartbeat/{session_hash}"


# Another process opens the pages, so that this process's heap is the server's alone.
PAGES = """
import asyncio, sys, httpx
async def main(url, count):
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=500)) as client:
        streams = [client.stream("GET", f"{url}/gradio_api/heartbeat/page{n}")
                   for n in range(count)]
        readers = [(await stream.__aenter__()).aiter_lines() for stream in streams]
        for lines in readers:  # kept, or their stream would close
            print(await anext(lines), flush=True)
        await asyncio.to_thread(sys.stdin.read)  # open until told
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def open_pages(url: str, count: int, then: Callable[[], object]) -> list[str]:
    """Opens `count` heartbeats, calls `then` while all are open, and closes them."""
    pages = subprocess.Popen([sys.executable, "-c", PAGES, url, str(count)], text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert pages.stdout is not None and pages.stdin is not None
    try:
        lines = [pages.stdout.readline().strip() for _ in range(count)]
        then()
        pages.stdin.close()
        pages.wait(30)
    finally:
        pages.kill()
    return lines


def objects_now() -> int:
    gc.collect()
    return len(gc.get_objects())


def test_the_heartbeat_is_served_lean(served) -> None:
    _, app, _ = served
    lean = [m.kwargs for m in app.user_middleware if m.cls is LeanHeartbeats]
    assert lean and LeanHeartbeats(app, **lean[0]).active


def test_an_open_page_holds_few_objects(served) -> None:
    url, _, _ = served
    counts: list[int] = []
    before = objects_now()
    lines = open_pages(url, OPEN_PAGES, lambda: counts.append(objects_now()))
    assert lines == ["data: ALIVE"] * OPEN_PAGES
    per_page = (counts[0] - before) / OPEN_PAGES
    assert per_page < MAX_OBJECTS_PER_PAGE, f"{per_page:.0f} objects per open page"


def test_the_stream_carries_gradio_s_type_and_the_security_headers(served) -> None:
    url, _, _ = served
    with httpx.stream("GET", heartbeat_url(url, "abc"), timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert next(line for line in response.iter_lines() if line) == "data: ALIVE"


def test_other_requests_and_methods_pass_through(served) -> None:
    url, _, _ = served
    assert httpx.post(heartbeat_url(url, "abc"), timeout=10).status_code == 405
    assert httpx.get(heartbeat_url(url, "abc") + "/more", timeout=10).status_code == 404


def test_a_closed_page_s_session_is_marked_closed(served) -> None:
    """Gradio's clean-up runs when the stream ends: the session's state is marked for
    deletion (and its events in flight are ended)."""
    url, app, _ = served
    holder = _gradio_app(app).state_holder
    session_hash = secrets.token_hex(8)
    holder[session_hash]  # a page that has sent an event has a session
    with httpx.stream("GET", heartbeat_url(url, session_hash), timeout=10) as response:
        lines = response.iter_lines()  # kept: a dropped one would close the stream
        assert next(line for line in lines if line) == "data: ALIVE"
        assert not holder.session_data[session_hash].is_closed
    deadline = time.monotonic() + 10
    while not holder.session_data[session_hash].is_closed:
        assert time.monotonic() < deadline, "the closed page's session is still open"
        time.sleep(0.05)


def test_the_streams_end_when_the_server_stops(tmp_path: Path) -> None:
    with serve(tmp_path) as (url, app, loop), \
            httpx.stream("GET", heartbeat_url(url, "abc"), timeout=10) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line) == "data: ALIVE"
        loop.call_soon_threadsafe(_gradio_app(app).stop_event.set)
        # The next heartbeat is 15 s away: a stream still open fails with a read timeout.
        assert [line for line in lines if line] == []


def test_a_made_up_session_s_heartbeat_makes_no_session(served) -> None:
    url, app, _ = served
    holder = _gradio_app(app).state_holder
    before = len(holder.session_data)
    session_hash = secrets.token_hex(8)
    with httpx.stream("GET", heartbeat_url(url, session_hash), timeout=10) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line) == "data: ALIVE"
    time.sleep(0.5)  # the clean-up after the stream has run
    assert session_hash not in holder.session_data and len(holder.session_data) == before
