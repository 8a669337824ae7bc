"""Pages nobody uses any more are forgotten, and made-up session ids cannot fill the server.

Gradio keeps a copy of the page's configuration for every session id it has seen, and frees
it only past 10,000 sessions. The app drops sessions idle for longer than
`--session-idle-minutes` and keeps at most `--max-sessions`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gc
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pytest
from gradio.state_holder import SessionState, StateHolder

from phi4ui.engines import build_engine
from phi4ui.settings import load_settings
from phi4ui.web.server import _gradio_app, build_server
from phi4ui.web.sessions import (
    BATCH,
    ForgottenSessions,
    SessionReaper,
    forget_sessions,
    idle_sessions,
    unused_for,
)
from tests.support.apprun import RunningApp, health, launch_app
from tests.support.pageclient import PageClient, send

IDLE = datetime.timedelta(minutes=30)
NOT_USED = "This page was not used for over"
CLOSED = "This page was closed, or lost its connection, for over"


def forget_idle_sessions(holder: StateHolder, idle: datetime.timedelta,
                         now: datetime.datetime) -> int:
    """What one pass of the reaper does, at `now`."""
    return len(forget_sessions(holder, idle_sessions(holder, idle, now), idle, now))


def holder_with_state(deleted: list[Any]) -> tuple[StateHolder, gr.State]:
    with gr.Blocks() as page:
        state = gr.State([], delete_callback=deleted.append)
    holder = StateHolder()
    holder.set_blocks(page)
    return holder, state


def test_sessions_idle_too_long_are_dropped_with_their_state() -> None:
    deleted: list[Any] = []
    holder, state = holder_with_state(deleted)
    now = datetime.datetime.now()
    for session_id, idle_for in (("gone", IDLE * 2), ("reading", IDLE / 2)):
        holder[session_id][state._id] = [session_id]  # what the page's events store
        holder.time_last_used[session_id] = now - idle_for

    assert forget_idle_sessions(holder, IDLE, now) == 1
    assert list(holder.session_data) == ["reading"] and "gone" not in holder.time_last_used
    assert deleted == [["gone"]]  # Gradio's delete callback got the forgotten state


def test_a_session_without_a_last_use_counts_as_new() -> None:
    holder, _ = holder_with_state([])
    holder.session_data["fresh"] = SessionState(holder.blocks)  # made, not yet marked as used
    now = datetime.datetime.now()
    assert forget_idle_sessions(holder, IDLE, now) == 0
    assert forget_idle_sessions(holder, IDLE, now + IDLE * 2) == 1


# ---------------------------------------------------------------- a new session's state

@pytest.fixture(scope="module")
def page_sessions(tmp_path_factory: pytest.TempPathFactory) -> StateHolder:
    """Gradio's sessions of the real page, built (not started) as the app builds it."""
    settings = load_settings(["--engine", "remote", "--base-url", "http://127.0.0.1:9/v1",
                              "--db-path", str(tmp_path_factory.mktemp("db") / "phi4ui.db")],
                             environ={})
    return _gradio_app(build_server(settings, build_engine(settings))).state_holder


def made_at_once(holder: StateHolder) -> SessionState:
    """A session as Gradio's own constructor makes it: every block's configuration copied."""
    session = SessionState.__new__(SessionState)
    SessionState.__init__.__wrapped__(session, holder.blocks)  # type: ignore[attr-defined]
    return session


def copies_made(session: SessionState) -> int:
    return dict.__len__(session.config_values)


def test_a_session_keeps_no_copy_of_the_page_s_configuration(
        page_sessions: StateHolder) -> None:
    # Copying all of it, on the event loop, held every page for 181-243 ms under load, and
    # the copies were a fifth of what each full garbage collection walked.
    session = page_sessions[secrets.token_hex(8)]
    chat = next(block for block in page_sessions.blocks.blocks.values()
                if getattr(block, "elem_id", None) == "chatbot")
    conversation = [{"role": "user", "content": "hi"}]
    session._update_value_in_config(chat._id, conversation)  # each chat update does this
    session._update_config(chat._id)  # and a replaced block this
    assert copies_made(session) == 0 and list(session.components) == []
    assert not any(value is conversation for value in gc.get_referents(session.config_values))
    assert copies_made(made_at_once(page_sessions)) > 100  # the page's blocks, in Gradio's


def test_gradio_s_writes_to_any_block_s_configuration_are_taken_and_dropped(
        page_sessions: StateHolder) -> None:
    # The Runs tab's blocks are not among the page's own: a write for one of them failed
    # every event that read them ("Error" in the tab) when only the page's were taken.
    session = page_sessions[secrets.token_hex(8)]
    page_block = next(iter(made_at_once(page_sessions).config_values))
    for block_id in (page_block, max(page_sessions.blocks.blocks) + 1_000):
        assert block_id in session.config_values
        session._update_value_in_config(block_id, "changed")
        session.config_values[block_id] = {"props": {"value": "copied"}}
    assert copies_made(session) == 0


def test_a_session_s_tables_of_the_page_s_blocks_and_events_are_left_out_of_the_walks(
        page_sessions: StateHolder) -> None:
    # Hundreds of entries each, per session: a large part of what every full garbage
    # collection walked under load, and nothing in them can form a cycle.
    session = page_sessions[secrets.token_hex(8)]
    tables = session.blocks_config
    assert len(tables.blocks) > 100 and len(tables.fns) > 50
    assert tables.blocks is not page_sessions.blocks.default_config.blocks  # still its own
    assert not gc.is_tracked(tables.blocks) and not gc.is_tracked(tables.fns)
    assert gc.is_tracked(made_at_once(page_sessions).blocks_config.blocks)  # Gradio's own

    replaced = next(iter(tables.blocks))
    tables.blocks[replaced] = type(tables.blocks[replaced])()  # a session's own block
    assert gc.is_tracked(tables.blocks), "what a session adds is walked again"


# ---------------------------------------------------------------- over HTTP, as an attacker

CAP = 20


def _start(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory, *flags: str
           ) -> RunningApp:
    # No engine is needed to hold sessions: the page serves while its server is down.
    running = launch_app(checkpoint, tmp_path_factory.mktemp("sessions"), "--engine",
                         "remote", "--base-url", "http://127.0.0.1:9/v1", *flags)
    deadline = time.monotonic() + 120
    while _sessions(running) is None:
        if running.process.poll() is not None or time.monotonic() > deadline:
            running.stop()
            pytest.fail(f"the app did not start:\n{running.log()}")
        time.sleep(0.5)
    return running


def _serving(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory, *flags: str
             ) -> Iterator[RunningApp]:
    running = _start(checkpoint, tmp_path_factory, *flags)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def capped_app(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[RunningApp]:
    yield from _serving(checkpoint, tmp_path_factory, "--max-sessions", str(CAP))


@pytest.fixture(scope="module")
def forgetful_app(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[RunningApp]:
    yield from _serving(checkpoint, tmp_path_factory, "--session-idle-minutes", "0.1")  # 6 s


def _sessions(app: RunningApp) -> int | None:
    try:
        return httpx.get(f"{app.url}/healthz", timeout=5).json()["sessions"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def tick(client: PageClient, session_hash: str) -> None:
    """What an open page sends every few seconds: a request for the live figures."""
    client.session_hash = session_hash
    refresh = next(d for d in client.dependencies()
                   if any(target[1] == "tick" for target in d["targets"]))
    assert client.call(refresh, [None]).success


def test_made_up_session_ids_cannot_fill_the_server(capped_app: RunningApp) -> None:
    client = PageClient(capped_app.url)
    try:
        for _ in range(3 * CAP):
            tick(client, secrets.token_hex(8))
        assert _sessions(capped_app) == CAP
    finally:
        client.close()


def test_no_visitor_can_make_the_server_write_a_session_s_page_to_disk(
        capped_app: RunningApp) -> None:
    # Gradio's deep-link route wrote 164 KB per call and change of the page's values.
    client = PageClient(capped_app.url)
    try:
        tick(client, secrets.token_hex(8))
        answer = httpx.get(f"{capped_app.url}/gradio_api/deep_link",
                           params={"session_hash": client.session_hash}, timeout=10)
        assert answer.status_code == 404
        assert not list(capped_app.gradio_dir.rglob("state.json"))
    finally:
        client.close()


def test_a_page_that_stops_asking_is_forgotten_and_an_open_one_kept(
        forgetful_app: RunningApp) -> None:
    app = forgetful_app  # forgets pages unused for 6 s
    client = PageClient(app.url)
    for _ in range(5):
        tick(client, secrets.token_hex(8))  # pages that are then closed
    open_page = secrets.token_hex(8)
    try:
        tick(client, open_page)
        started = time.monotonic()
        while (_sessions(app) or 0) > 1:
            assert time.monotonic() - started < 60, f"sessions left: {_sessions(app)}"
            tick(client, open_page)
            time.sleep(1)
        assert _sessions(app) == 1  # the page still asking
        assert health(app.url) is None  # no engine: /healthz says 503, it still counts
    finally:
        client.close()


def test_a_page_that_comes_back_after_being_forgotten_is_told_once(
        forgetful_app: RunningApp) -> None:
    """Its chat is still on the page, its conversation no longer on the server: the first
    message is refused with the reason, and the next is taken as a new conversation."""
    app = forgetful_app
    client = PageClient(app.url)
    try:
        tick(client, secrets.token_hex(8))
        fresh, _ = send(client, "Hello")  # refused too (no engine), for that reason alone
        assert fresh.messages and NOT_USED not in fresh.text, fresh.raw[-1000:]
        started = time.monotonic()
        while _sessions(app) != 0:  # asleep past the idle limit
            assert time.monotonic() - started < 60, f"sessions left: {_sessions(app)}"
            time.sleep(0.5)
        tick(client, client.session_hash)  # the page wakes up and asks for the figures
        came_back, _ = send(client, "Hello again")
        assert f"{NOT_USED} 6 seconds" in came_back.text, came_back.raw[-1000:]
        again, _ = send(client, "Hello again")
        assert again.messages and NOT_USED not in again.text, again.raw[-1000:]
    finally:
        client.close()


@pytest.fixture(scope="module")
def closing_app(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[RunningApp]:
    yield from _serving(checkpoint, tmp_path_factory, "--closed-page-minutes", "0.1")  # 6 s


@contextlib.contextmanager
def heartbeat(app: RunningApp, session_hash: str) -> Iterator[None]:
    """A page's heartbeat stream, open until the block ends, as the browser holds it."""
    with httpx.stream("GET", f"{app.url}/gradio_api/heartbeat/{session_hash}",
                      timeout=30) as stream:
        lines = stream.iter_lines()  # kept: dropping it would close the stream
        assert next(lines).startswith("data:")
        yield


def test_a_closed_page_is_forgotten_soon_and_a_quiet_open_one_kept(
        closing_app: RunningApp) -> None:
    """A page whose heartbeat ended is let go after `--closed-page-minutes`; a page that
    asks for nothing (a hidden tab) but holds its heartbeat open stays, for the idle limit
    (an hour), even when someone who knows its id opens and closes another heartbeat for
    it. The closed one, coming back, is told why its conversation is gone."""
    app = closing_app
    client = PageClient(app.url)
    closed, hidden = secrets.token_hex(8), secrets.token_hex(8)
    try:
        tick(client, closed)
        tick(client, hidden)
        with heartbeat(app, hidden):
            with heartbeat(app, hidden):
                pass  # another stream for the same page, ended: Gradio marks it closed
            with heartbeat(app, closed):
                pass  # the page is closed
            started = time.monotonic()
            while _sessions(app) != 1:
                assert time.monotonic() - started < 60, f"sessions left: {_sessions(app)}"
                time.sleep(0.5)
            time.sleep(8)  # past the 6 s again: the hidden page is still kept
            assert _sessions(app) == 1
        tick(client, closed)  # the closed page comes back (a phone woken up)
        came_back, _ = send(client, "Hello again")
        assert f"{CLOSED} 6 seconds" in came_back.text, came_back.raw[-1000:]
    finally:
        client.close()


def test_only_the_latest_forgotten_sessions_are_remembered_each_told_once() -> None:
    forgotten = ForgottenSessions(cap=3)
    forgotten.add(["a", "b", "c", "d"], unused_for(60))
    assert forgotten.notice("a") is None  # past the cap
    assert forgotten.notice("made-up") is None and forgotten.notice(None) is None
    notice = forgotten.notice("b")
    assert notice is not None and f"{NOT_USED} 60 minutes" in notice
    assert forgotten.notice("b") is None


def test_many_idle_sessions_are_forgotten_a_batch_at_a_time() -> None:
    # Freeing 10,000 sessions at once held the event loop for a second.
    holder, _ = holder_with_state([])
    long_ago = datetime.datetime.now() - IDLE * 2
    for index in range(2 * BATCH + 3):
        holder[f"s{index}"]
        holder.time_last_used[f"s{index}"] = long_ago
    reaper = SessionReaper(holder, IDLE.total_seconds() / 60)
    batches = []

    async def sweep_and_watch() -> int:
        async def watch() -> None:
            while True:
                batches.append(len(holder.session_data))
                await asyncio.sleep(0)
        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0)
        try:
            return await reaper.sweep()
        finally:
            watcher.cancel()

    assert asyncio.run(sweep_and_watch()) == 2 * BATCH + 3
    assert not holder.session_data and reaper.forgotten == 2 * BATCH + 3
    # Other tasks ran between the batches, and saw each one's result.
    assert {BATCH + 3, 3} <= set(batches), batches
