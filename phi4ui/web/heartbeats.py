"""Each open page keeps one request open for its whole life: Gradio's heartbeat stream,
whose end tells the server that the page is gone (its answers in flight are stopped, its
state marked for deletion). Served through the full stack (this app's FastAPI around
Gradio's, each with its middleware, then Starlette's streaming response), such a request
holds about 250 objects that Python's garbage collector walks in every full collection
for as long as the page stays open: under the soak's 64 open pages, 16,000 of the 41,000
objects each full collection walked, and those collections were the event loop's longest
stalls. Served here, a heartbeat holds about 120.

`LeanHeartbeats` answers that one route itself, before the framework's layers, with
Gradio's own endpoint: the stream and what happens when it ends are Gradio's, only the
layers around it are gone. Pure ASGI; every other request passes through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import BackgroundTasks, Request
from fastapi.routing import APIRoute
from gradio.route_utils import API_PREFIX
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)
HEARTBEAT_ROUTE = f"{API_PREFIX}/heartbeat/{{session_hash}}"
HEARTBEAT_PATH = re.compile(re.escape(API_PREFIX) + r"/heartbeat/([^/]+)")


class LeanHeartbeats:
    def __init__(self, app: ASGIApp, *, gradio_app: Any) -> None:
        self.app = app
        self.gradio_app = gradio_app
        found = _heartbeat_route(gradio_app)
        if found is None:  # a Gradio without this route: its own path serves it
            log.warning("Gradio's heartbeat route was not found; it is served as is")
        self.route = found
        # The signed-in user, for Gradio's `unload` events: the route's own dependency.
        self._current_user = None if found is None else next(
            (d.call for d in found.dependant.dependencies if d.name == "username"), None)

    @property
    def active(self) -> bool:
        return self.route is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_hash = self._session_hash(scope)
        if session_hash is None:
            await self.app(scope, receive, send)
            return
        await self._serve(scope, receive, send, session_hash)

    def _session_hash(self, scope: Scope) -> str | None:
        if self.route is None or scope["type"] != "http" or scope["method"] != "GET":
            return None
        match = HEARTBEAT_PATH.fullmatch(_route_path(scope))
        return match[1] if match else None

    async def _serve(self, scope: Scope, receive: Receive, send: Send,
                     session_hash: str) -> None:
        assert self.route is not None
        request = Request({**scope, "app": self.gradio_app,
                           "path_params": {"session_hash": session_hash}}, receive)
        tasks = BackgroundTasks()  # Gradio's `unload` events, run once the stream ends
        response = self.route.endpoint(session_hash=session_hash, request=request,
                                       background_tasks=tasks,
                                       username=await self._user(request))
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": response.raw_headers})
        pump = asyncio.create_task(_pump(response.body_iterator, send))
        watcher = asyncio.create_task(_cancel_on_disconnect(receive, pump))
        try:
            await pump  # until the page goes away or the server stops
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
        await tasks()

    async def _user(self, request: Request) -> str | None:
        if self._current_user is None:
            return None
        user = self._current_user(request)
        return await user if inspect.isawaitable(user) else user


def _heartbeat_route(gradio_app: Any) -> APIRoute | None:
    return next((route for route in gradio_app.router.routes
                 if isinstance(route, APIRoute) and route.path == HEARTBEAT_ROUTE), None)


def _route_path(scope: Scope) -> str:
    """The path below the app's root path (`--root-path`), as Starlette routes it."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] in ("", "/"):
        return path[len(root):]
    return path


async def _pump(body: AsyncIterator[str | bytes], send: Send) -> None:
    """Sends Gradio's stream. Gradio's stream does its clean-up when cancelled while it
    waits; one cancelled while a line is being sent is handed the cancellation too."""
    try:
        async for chunk in body:
            await send({"type": "http.response.body", "more_body": True,
                        "body": chunk if isinstance(chunk, bytes) else chunk.encode()})
    except asyncio.CancelledError:
        athrow: Callable[..., Awaitable[Any]] | None = getattr(body, "athrow", None)
        if athrow is not None:
            with contextlib.suppress(StopAsyncIteration, asyncio.CancelledError):
                await athrow(asyncio.CancelledError())


async def _cancel_on_disconnect(receive: Receive, pump: asyncio.Task[None]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    pump.cancel()
