"""AnyIO's worker threads, which Gradio uses for every streamed update's postprocessing:
AnyIO ends those idle for 10 s, and starting a new one blocks the event loop until the
thread has run. The server keeps them (`_keep_worker_threads`)."""

from __future__ import annotations

import asyncio
import inspect
import threading
from pathlib import Path

import anyio
import gradio as gr
import pytest
from anyio._backends._asyncio import AsyncIOBackend, WorkerThread

from phi4ui.engines import build_engine
from phi4ui.page.chat_tab import build_page
from phi4ui.settings import load_settings
from phi4ui.web import server


def busy_then_idle_for(seconds: float, monkeypatch: pytest.MonkeyPatch) -> int:
    """Runs three calls at once in worker threads, lets `seconds` pass by AnyIO's clock, runs
    one more; returns how many of the three workers are still there."""
    clock = AsyncIOBackend.current_time

    async def scenario() -> int:
        started = threading.Barrier(3)
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(anyio.to_thread.run_sync, started.wait)
        mine = {t for t in threading.enumerate() if t.name == "AnyIO worker thread"}
        monkeypatch.setattr(AsyncIOBackend, "current_time",
                            classmethod(lambda cls: clock() + seconds))
        await anyio.to_thread.run_sync(lambda: None)
        await asyncio.sleep(0.2)  # the pruned ones end
        return sum(t.is_alive() for t in mine)

    return asyncio.run(scenario())


def test_anyio_ends_workers_idle_for_ten_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The AnyIO behaviour the server works around."""
    monkeypatch.setattr(WorkerThread, "MAX_IDLE_TIME", 10)
    assert busy_then_idle_for(30.0, monkeypatch) == 1


def test_the_server_keeps_its_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(WorkerThread, "MAX_IDLE_TIME", 10)
    server._keep_worker_threads()
    assert WorkerThread.MAX_IDLE_TIME == server.WORKER_IDLE_S
    assert busy_then_idle_for(30.0, monkeypatch) == 3


def test_gradio_processes_in_a_few_threads_while_its_queue_runs_all_events() -> None:
    """Gradio's limiter, made at the app's start, lets `PROCESSING_THREADS` pre- and
    postprocessing calls run at once; the queue still runs `max_threads` events."""
    import gradio as gr
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    with gr.Blocks(analytics_enabled=False) as page:
        gr.Chatbot()
    page.max_threads = 512
    page.queue(default_concurrency_limit=None)
    server._limit_processing_threads(page)
    app = gr.mount_gradio_app(FastAPI(), page, path="/")
    with TestClient(app):
        assert page.limiter is not None
        assert page.limiter.total_tokens == server.PROCESSING_THREADS
        assert page._queue.max_thread_count == 512


# Each small enough not to hold one of the two processing threads for long; a new sync
# handler belongs here only if it is.
SMALL_SYNC_HANDLERS = {
    "ChatHandlers.attach_photo", "ChatHandlers.card_settings", "ChatHandlers.default_settings",
    "ChatHandlers.load_settings", "ChatHandlers.save_settings", "ChatHandlers.use_example",
    "SideBySideHandlers.on_preset",
}


def test_the_page_s_sync_handlers_are_only_small_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Gradio runs a sync handler in one of the `PROCESSING_THREADS` that also postprocess
    every streamed update: a slow one there would hold up every answer being written."""
    built: list[gr.Blocks] = []
    monkeypatch.setattr(server, "build_page",
                        lambda *a, **k: built.append(build_page(*a, **k)) or built[-1])
    settings = load_settings(["--engine", "remote", "--base-url", "http://127.0.0.1:9/v1",
                              "--db-path", str(tmp_path / "phi4ui.db")], environ={})
    server.build_server(settings, build_engine(settings))  # built, not started
    handlers = [fn.fn for fn in built[0].fns.values() if fn.fn is not None]
    sync = {getattr(handler, "__qualname__", repr(handler)) for handler in handlers
            if not (inspect.iscoroutinefunction(handler)
                    or inspect.isasyncgenfunction(handler))}
    assert len(handlers) > 40 and sync <= SMALL_SYNC_HANDLERS, sorted(sync)
