"""Gradio's long-lived streams (each page's heartbeat, each answer's event stream), served
by `LeanStreams` over plain HTTP on 127.0.0.1: Gradio's streams and clean-up, with far fewer
objects held per open stream.

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
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr
import httpx
import pytest
from fastapi import FastAPI

from bench.procs import free_port
from phi4ui.engines import build_engine
from phi4ui.settings import load_settings
from phi4ui.web.lean_streams import LeanStreams
from phi4ui.web.server import _gradio_app, build_server
from tests.support.threaded_server import served_in_thread

OPEN_PAGES = 30
# Through the framework's layers a heartbeat held about 250 objects; Gradio's stream
# itself (its tasks and waits) and uvicorn's connection need about 100.
MAX_OBJECTS_PER_PAGE = 170


@contextlib.contextmanager
def serve(scratch: Path, *more_args: str
          ) -> Iterator[tuple[str, FastAPI, asyncio.AbstractEventLoop]]:
    settings = load_settings(["--engine", "remote", "--base-url",
                              f"http://127.0.0.1:{free_port()}/v1", "--connect-timeout", "0.5",
                              "--db-path", str(scratch / "answers.db"), *more_args], environ={})
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


def test_both_streams_are_served_lean(served) -> None:
    _, app, _ = served
    lean = [m.kwargs for m in app.user_middleware if m.cls is LeanStreams]
    assert lean and LeanStreams(app, **lean[0]).active


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


# ---------------------------------------------------------------- the answers' event streams

def events_url(url: str, session_hash: str) -> str:
    return f"{url}/gradio_api/queue/data?session_hash={session_hash}"


def test_an_unknown_session_s_event_stream_says_so_and_ends(served) -> None:
    url, _, _ = served
    with httpx.stream("GET", events_url(url, secrets.token_hex(8)), timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "default-src 'self'" in response.headers["content-security-policy"]
        lines = [line for line in response.iter_lines() if line]
    assert len(lines) == 1 and '"session_not_found":true' in lines[0]


def test_an_event_stream_request_without_a_session_gets_gradio_s_own_refusal(served) -> None:
    url, _, _ = served
    response = httpx.get(f"{url}/gradio_api/queue/data", timeout=10)
    assert response.status_code == 422  # FastAPI's: the query lacks `session_hash`
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert httpx.post(events_url(url, "abc"), timeout=10).status_code == 405


def test_with_logins_the_event_stream_keeps_gradio_s_sign_in_check(tmp_path: Path) -> None:
    with serve(tmp_path, "--auth", "ann:a-long-password") as (url, _, _):
        response = httpx.get(events_url(url, "abc"), timeout=10)
    assert response.status_code == 401


# A page of one slow event, mounted with and without `LeanStreams`: the difference is the
# layers alone. Its event waits until the test releases it, so the streams stay open.
SLOW_EVENTS = 20


def slow_page(release: threading.Event) -> gr.Blocks:
    with gr.Blocks() as page:
        box = gr.Textbox()
        box.submit(lambda text: release.wait(60) and text, box, box, api_name="slow")
    page.queue(default_concurrency_limit=None)
    return page


@contextlib.contextmanager
def serve_slow_page(lean: bool, release: threading.Event) -> Iterator[str]:
    page = slow_page(release)
    app = gr.mount_gradio_app(FastAPI(), page, path="/")
    if lean:
        app.add_middleware(LeanStreams, gradio_app=_gradio_app(app))
    with served_in_thread(app) as served:
        yield served.url


# Joins `count` events, each in a session of its own, prints each stream's first line,
# waits to be told, then prints how each stream ended.
EVENTS = """
import asyncio, json, sys, httpx
async def one(client, url, n, go):
    body = {"data": ["x"], "fn_index": 0, "session_hash": f"s{n}", "event_data": None,
            "trigger_id": 1}
    (await client.post(f"{url}/gradio_api/queue/join", json=body)).raise_for_status()
    async with client.stream("GET", f"{url}/gradio_api/queue/data",
                             params={"session_hash": f"s{n}"}) as stream:
        kinds = []
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                kinds.append(json.loads(line[5:])["msg"])
                if len(kinds) == 1:
                    print(kinds[0], flush=True)
                    await go.wait()
        return kinds
async def main(url, count):
    go = asyncio.Event()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=500)) as c:
        runs = [asyncio.create_task(one(c, url, n, go)) for n in range(count)]
        await asyncio.to_thread(sys.stdin.readline)
        go.set()
        for kinds in await asyncio.gather(*runs):
            print(",".join(kinds), flush=True)
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def objects_per_open_event_stream(lean: bool) -> tuple[float, list[str]]:
    release = threading.Event()
    with serve_slow_page(lean, release) as url:
        # Only what is made from here on counts: objects of the servers before this one
        # can still die meanwhile, which made the difference negative now and then.
        gc.collect()
        gc.freeze()
        events = subprocess.Popen([sys.executable, "-c", EVENTS, url, str(SLOW_EVENTS)],
                                  text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert events.stdout is not None and events.stdin is not None
        try:
            firsts = [events.stdout.readline().strip() for _ in range(SLOW_EVENTS)]
            assert set(firsts) <= {"estimation", "process_starts"}, firsts
            time.sleep(0.5)  # every event has started
            made = objects_now()
            gc.unfreeze()  # before Gradio's work resumes: all of it counts again
            release.set()
            events.stdin.write("go\n")
            events.stdin.flush()
            # Queue estimates come and go with the timing; what an event does may not.
            ends = [",".join(kind for kind in events.stdout.readline().strip().split(",")
                             if kind != "estimation") for _ in range(SLOW_EVENTS)]
            events.wait(30)
        finally:
            gc.unfreeze()
            release.set()
            events.kill()
    return made / SLOW_EVENTS, ends


def test_an_open_event_stream_holds_far_fewer_objects_and_streams_the_same() -> None:
    lean, lean_ends = objects_per_open_event_stream(lean=True)
    full, full_ends = objects_per_open_event_stream(lean=False)
    assert lean_ends == full_ends == ["process_starts,process_completed,close_stream"
                                      ] * SLOW_EVENTS
    print(f"{lean:.0f} objects per open stream, {full:.0f} through the layers")
    assert lean < full - 60, f"{lean:.0f} objects per open stream, {full:.0f} through the layers"
