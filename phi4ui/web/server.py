"""The web server: the Gradio page mounted on FastAPI, a readiness check, and the
engine started in the background on the loop that serves requests."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from gradio.routes import App as GradioApp
from gradio.utils import MatplotlibBackendMananger
from starlette.routing import Mount

from phi4ui.core.engine import Engine
from phi4ui.evaluation import staging
from phi4ui.evaluation.store import Store
from phi4ui.page.api import add_public_api
from phi4ui.page.api_inputs import MediaSources
from phi4ui.page.chat_tab import CSS_PATH, build_page, theme
from phi4ui.page.file_owners import FileOwners
from phi4ui.page.files import PageFiles, upload_root
from phi4ui.page.gradio_workarounds import CSS as WORKAROUNDS_CSS
from phi4ui.page.gradio_workarounds import keep_uploads_already_there, remember_file_checks
from phi4ui.page.update_files import walk_chat_updates_once_per_file
from phi4ui.settings import Settings
from phi4ui.web import web_guard
from phi4ui.web.file_guard import FileGuard
from phi4ui.web.lean_streams import LeanStreams, serves_heartbeats
from phi4ui.web.loopwatch import LoopWatch
from phi4ui.web.mcp_guard import McpGuard
from phi4ui.web.mcp_tool import McpTool
from phi4ui.web.page_cache import PageCache
from phi4ui.web.request_limits import RequestLimits
from phi4ui.web.sessions import (
    ForgottenSessions,
    OpenPages,
    SessionReaper,
    keep_no_session_configs,
)

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def build_server(settings: Settings, engine: Engine) -> FastAPI:
    _lighten_gradio()
    _keep_worker_threads()
    staging.sweep()  # what earlier runs left in the temp folder
    store = Store.from_settings(settings)
    loop_watch = LoopWatch(report_stalls=False)  # until the engine is ready
    app = FastAPI(lifespan=_lifespan(settings, engine, store, loop_watch),
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine  # for `stop_serving`
    _add_health_route(app, engine, loop_watch)
    return _mount_page(app, settings, engine, store)


def _lifespan(settings: Settings, engine: Engine, store: Store | None, loop_watch: LoopWatch
              ) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Runs the engine and the loop watch while the app serves; stops them after."""
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running = asyncio.create_task(_run_engine(engine, loop_watch))
        watching = asyncio.create_task(loop_watch.run())
        reaper = SessionReaper(_gradio_app(app).state_holder, settings.session_idle_minutes,
                               app.state.forgotten_sessions, open_pages=app.state.open_pages,
                               closed_minutes=settings.closed_page_minutes)
        reaping = asyncio.create_task(reaper.run())
        sharing = asyncio.create_task(asyncio.to_thread(_share, settings.port)) \
            if settings.share else None
        mcp: McpTool | None = getattr(app.state, "mcp", None)
        try:
            async with mcp.running() if mcp is not None else contextlib.nullcontext():
                yield
        finally:
            running.cancel()
            watching.cancel()
            reaping.cancel()
            if sharing is not None:
                sharing.cancel()
            await engine.close()
            if store is not None:
                store.close()
            loop_watch.log_heap_census()
            # What `_settle_memory` froze must be collectable again at exit, or native
            # extensions report it as leaked.
            gc.unfreeze()

    return lifespan


def _add_health_route(app: FastAPI, engine: Engine, loop_watch: LoopWatch) -> None:
    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        status = engine.status
        body: dict[str, object] = {"state": status.state, "message": status.message,
                                   "engine": engine.info.kind, **loop_watch.figures(),
                                   "sessions": len(_gradio_app(app).state_holder.session_data)}
        if status.state == "ready":
            # Monitoring and the browser tests read these to see that a stop freed the engine.
            try:
                snapshot = await engine.snapshot()
            except Exception:  # readiness does not depend on the figures
                log.debug("engine snapshot failed", exc_info=True)
            else:
                body.update(running=snapshot.running, waiting=snapshot.waiting)
        return JSONResponse(body, status_code=200 if status.state == "ready" else 503)


def _mount_page(app: FastAPI, settings: Settings, engine: Engine, store: Store | None
                ) -> FastAPI:
    """The Gradio page at `/`, with Gradio's own checks on and phi4ui's guards around it."""
    owners = FileOwners(upload_root())
    # Review shows everyone's recorded answers: to colleagues behind a login, or to whoever
    # uses this machine, never to the public.
    everyone_may_review = bool(settings.logins()) or (settings.public_host or settings.host
                                                      ) in LOOPBACK
    files = PageFiles(owners)
    forgotten = ForgottenSessions()
    app.state.forgotten_sessions = forgotten  # filled by the reaper (`_lifespan`)
    page = build_page(engine, store, files, everyone_may_review=everyone_may_review,
                      forgotten=forgotten.notice)
    media = MediaSources(settings.mcp_fetch_hosts.split(","), int(settings.upload_max_mb * 1e6))
    api = add_public_api(page, engine, store, files, media)
    # The queue runs at most `max_threads` events at once, whatever their concurrency limits.
    page.max_threads = settings.max_active_events
    page.state_session_capacity = settings.max_sessions  # Gradio's own is 10,000
    page.queue(default_concurrency_limit=None)
    _limit_processing_threads(page)
    # Gradio's upload route enforces max_file_size, so the cap holds for API clients too.
    mounted = gr.mount_gradio_app(app, page, path="/",
                                  max_file_size=int(settings.upload_max_mb * 1e6),
                                  allowed_paths=[], show_error=False, theme=theme(),
                                  css=WORKAROUNDS_CSS, css_paths=[CSS_PATH],
                                  auth=settings.logins() or None,
                                  auth_message="phi4ui: sign in to continue.",
                                  root_path=settings.root_path or None)
    _check_files_like_a_launched_app(page)
    _drop_deep_links(_gradio_app(mounted))
    if settings.mcp:
        mcp = McpTool(api, settings.host)
        mcp.mount(mounted)
        mounted.state.mcp = mcp  # its sessions run with the app (`_lifespan`)
        mounted.add_middleware(McpGuard, logins=settings.logins())
    mounted.add_middleware(PageCache, signed_in=bool(settings.logins()))  # inside the others
    mounted.add_middleware(FileGuard, owners=owners)
    mounted.add_middleware(RequestLimits)
    # Outside the guards above (Gradio's streams carry no body, file or page) and inside
    # the security headers.
    # The heartbeats it serves tell the reaper which pages are open (`_lifespan`).
    open_pages = OpenPages() if serves_heartbeats(_gradio_app(mounted)) else None
    mounted.state.open_pages = open_pages
    mounted.add_middleware(LeanStreams, gradio_app=_gradio_app(mounted), open_pages=open_pages)
    web_guard.install(mounted, settings)
    return mounted


async def stop_serving(app: FastAPI) -> None:
    """For a stop on a signal, before the web server waits for open connections to close:
    ends the answers in flight (after a short grace) and the pages' heartbeat streams.
    Otherwise each would hold the server until its timeout, then be cut off with a
    traceback in the log. The lifespan's shutdown then finds the engine closed."""
    _gradio_app(app).stop_event.set()
    await app.state.engine.close()


def _gradio_app(app: FastAPI) -> GradioApp:
    return next(route.app for route in app.routes
                if isinstance(route, Mount) and isinstance(route.app, GradioApp))


async def _run_engine(engine: Engine, loop_watch: LoopWatch) -> None:
    """Starts the engine, then keeps it running: a dead engine is restarted, a server that
    went away is checked again until it is back. Stalls are logged from then on: while
    the engine loads, its imports hold Python's lock, and every start would log a dozen."""
    await engine.start()
    _settle_memory()
    loop_watch.report_stalls = True
    await engine.watch()


def _settle_memory() -> None:
    """What is loaded by now (vLLM, torch, Gradio, the page) lives as long as the app.
    Moving it out of the garbage collector's view keeps its full collections short: they
    stalled the event loop, and so every page, for half a second under load."""
    gc.collect()
    gc.freeze()


def _check_files_like_a_launched_app(page: gr.Blocks) -> None:
    """Gradio checks that every file an event receives was uploaded, and every file it
    returns is one the app may serve, only once `launch()` has marked the page launched;
    `mount_gradio_app` never does. Without these checks an event that echoes a path sent by
    the browser hands out any file on the server."""
    page.has_launched = True


# Gradio's route for sharing a session's page by link; this page has no such link.
DEEP_LINK_ROUTE = "/gradio_api/deep_link"


def _drop_deep_links(gradio_app: GradioApp) -> None:
    """Gradio's deep-link route writes, for any session id a visitor names, a file of that
    session's whole page (164 KB for this page) into the upload folder, a new one for every
    change of the page's values: anyone could fill the disk with it."""
    gradio_app.router.routes = [route for route in gradio_app.router.routes
                                if getattr(route, "path", None) != DEEP_LINK_ROUTE]


def _lighten_gradio() -> None:
    """Removes per-event costs of Gradio that this app has no use for."""
    remember_file_checks()  # each streamed chat update re-checked every file of the chat
    keep_uploads_already_there()  # a file sent again was renamed over its copy on the loop
    keep_no_session_configs()  # each session copied blocks' configurations for nobody
    walk_chat_updates_once_per_file()  # each streamed chat update validated every file again
    # After every queued event Gradio rebuilds a pandas table of up to 10,000 past events for
    # its monitoring summary: milliseconds of CPU per event, growing with traffic. Recompute
    # it every 1,000 events instead.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
    _import_matplotlib_now_or_never()


def _import_matplotlib_now_or_never() -> None:
    """Gradio imports matplotlib around every event, to switch its backend. Installed, its
    first import held the loop 645 ms at the first event on the H200, and what it made was
    walked by every full garbage collection after; done here, before the start-up freeze,
    it costs the start instead. Not installed, each failed import searched the whole of
    sys.path again; a None entry in sys.modules fails it at once."""
    if "matplotlib" in sys.modules or importlib.util.find_spec("matplotlib") is not None:
        with MatplotlibBackendMananger():  # Gradio's own, as around an event
            pass
    else:
        sys.modules["matplotlib"] = None  # type: ignore[assignment]


# A worker thread that has waited this long for work ends (AnyIO's own limit is 10 s).
WORKER_IDLE_S = 3600


def _keep_worker_threads() -> None:
    """Gradio runs every streamed update's postprocessing (and sync handlers) in AnyIO's
    worker threads, and AnyIO ends a worker idle for 10 s; the next burst of updates starts
    new ones. Starting a thread blocks the event loop until the new thread has run
    (`Thread.start` waits for it), and under load that thread waits for a CPU and for
    Python's lock behind the busy ones: one such start held the loop for 3.7 s in the 2-core
    soak. Kept for an hour instead, the workers of a busy moment are there for the next;
    they number at most the page's `max_active_events`, and an idle one costs its stack."""
    from anyio._backends._asyncio import WorkerThread

    WorkerThread.MAX_IDLE_TIME = max(WorkerThread.MAX_IDLE_TIME, WORKER_IDLE_S)


# Gradio's pre- and postprocessing of events (each streamed chat update's) and its sync
# handlers run in worker threads, at most this many at once.
PROCESSING_THREADS = 2


def _limit_processing_threads(page: gr.Blocks) -> None:
    """Gradio runs each output's postprocessing in a worker thread, as many at once as
    the page runs events (`max_threads`, here `--max-active-events`). With tens of answers
    streaming, tens of threads want Python's lock at once, and the event loop, which gives
    it up at every system call, waits behind each of them to get it back: most of the
    loop's stall time was it off the CPU with several worker threads busy. The work is the
    same whichever thread does it, and the process runs Python on one core at a time; two
    threads do it with less waiting for the loop. The queue still runs `max_threads` events
    at once. Measured in the 2-core soak (64 people, 3 minutes): stalls over 100 ms after
    the warm-up fell from 33 to 6-7 (16 with four threads); the first token came later,
    p50 0.9-1.1 s against 0.7-0.9 s and p95 2.9 s against 1.7-2.4 s."""
    from anyio import CapacityLimiter

    def create_limiter() -> None:  # Gradio's own, at startup, takes `max_threads`
        page.limiter = CapacityLimiter(PROCESSING_THREADS)  # type: ignore[assignment]

    page.create_limiter = create_limiter  # type: ignore[method-assign]


def _share(port: int) -> None:
    """Publishes a temporary gradio.live link to this server (it needs internet access)."""
    import secrets

    from gradio import networking

    try:
        url = networking.setup_tunnel("127.0.0.1", port, secrets.token_urlsafe(32), None, None)
    except Exception as error:  # noqa: BLE001 - any failure means no link, and the app goes on
        log.warning("No share link: %s. The app still serves on its own address.", error)
        return
    log.info("Share link (temporary, anyone with it can use the app): %s", url)
