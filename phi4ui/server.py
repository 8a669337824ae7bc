"""The web server: the Gradio page mounted on FastAPI, a readiness check, and the
engine started in the background on the loop that serves requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from phi4ui.engines.base import Engine
from phi4ui.settings import Settings
from phi4ui.ui import CSS_PATH, build_page, theme

log = logging.getLogger(__name__)


def build_server(settings: Settings, engine: Engine) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(engine.start())
        try:
            yield
        finally:
            loading.cancel()
            await engine.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        status = engine.status
        body: dict[str, object] = {"state": status.state, "message": status.message,
                                   "engine": engine.info.kind}
        if status.state == "ready":
            # Monitoring and the browser tests read these to see that a stop freed the engine.
            try:
                snapshot = await engine.snapshot()
            except Exception:  # readiness does not depend on the figures
                log.debug("engine snapshot failed", exc_info=True)
            else:
                body.update(running=snapshot.running, waiting=snapshot.waiting)
        return JSONResponse(body, status_code=200 if status.state == "ready" else 503)

    page = build_page(engine)
    page.queue(default_concurrency_limit=None)
    return gr.mount_gradio_app(app, page, path="/", max_file_size=int(settings.upload_max_mb * 1e6),
                               allowed_paths=[], show_error=False, theme=theme(),
                               css_paths=[CSS_PATH])
