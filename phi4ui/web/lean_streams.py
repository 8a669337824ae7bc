"""Gradio's two long-lived streams, served before the framework's layers.

Each open page keeps its heartbeat stream open for its whole life (its end tells the server
that the page is gone), and each answer being written keeps its event stream
(`/gradio_api/queue/data`) open until the answer ends. Served through the full stack (this
app's FastAPI around Gradio's, each with its middleware and exception handlers, Gradio's
compression and CORS layers, then Starlette's streaming response with its task group), a
heartbeat held about 250 objects (about 120 served here), and an event stream about 117 more
than served here (416 against 299 per open stream of a slow event, measured side by side).
Python's garbage collector walks every one of them in each full collection for as long as
the stream stays open, and under the soak's load (64 people on 2 cores) those walks were
the event loop's longest stalls. They also pass every streamed line through each layer.

`LeanStreams` answers these two routes itself with Gradio's own endpoints: the streams and
what happens when they end are Gradio's, only the layers around them are gone. Gradio's
event stream checks the sign-in, so with logins configured it is served as before. Pure
ASGI; every other request passes through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

from fastapi import BackgroundTasks, Request
from fastapi.routing import APIRoute
from gradio.route_utils import API_PREFIX
from starlette.datastructures import QueryParams
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from phi4ui.web.sessions import OpenPages

log = logging.getLogger(__name__)
HEARTBEAT_ROUTE = f"{API_PREFIX}/heartbeat/{{session_hash}}"
HEARTBEAT_PATH = re.compile(re.escape(API_PREFIX) + r"/heartbeat/([^/]+)")
EVENTS_ROUTE = f"{API_PREFIX}/queue/data"


def serves_heartbeats(gradio_app: Any) -> bool:
    """Whether `LeanStreams` serves the pages' heartbeats, and so can count them."""
    return _route(gradio_app, HEARTBEAT_ROUTE) is not None


class LeanStreams:
    def __init__(self, app: ASGIApp, *, gradio_app: Any, open_pages: OpenPages | None = None
                 ) -> None:
        """`open_pages`: counts the heartbeat streams open, by session."""
        self.app = app
        self.gradio_app = gradio_app
        self.open_pages = open_pages
        self.heartbeat = _route(gradio_app, HEARTBEAT_ROUTE)
        self.events = _route(gradio_app, EVENTS_ROUTE)
        # The signed-in user, for Gradio's `unload` events: the route's own dependency.
        self._current_user = None if self.heartbeat is None else next(
            (d.call for d in self.heartbeat.dependant.dependencies if d.name == "username"),
            None)

    @property
    def active(self) -> bool:
        return self.heartbeat is not None and self.events is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = _route_path(scope)
            beat = HEARTBEAT_PATH.fullmatch(path) if self.heartbeat is not None else None
            if beat is not None:
                await self._serve_heartbeat(scope, receive, send, beat[1])
                return
            session_hash = self._events_session(scope, path)
            if session_hash is not None:
                await self._serve_events(scope, receive, send, session_hash)
                return
        await self.app(scope, receive, send)

    def _events_session(self, scope: Scope, path: str) -> str | None:
        """The session whose event stream this request asks for, when it is served here:
        not with logins configured (Gradio's route checks the sign-in)."""
        if self.events is None or path != EVENTS_ROUTE or self._signed_in_only():
            return None
        session_hash: str | None = QueryParams(scope["query_string"]).get("session_hash")
        return session_hash

    def _signed_in_only(self) -> bool:
        app = self.gradio_app
        return app.auth is not None or app.auth_dependency is not None

    async def _serve_heartbeat(self, scope: Scope, receive: Receive, send: Send,
                               session_hash: str) -> None:
        assert self.heartbeat is not None
        request = self._request(scope, receive, {"session_hash": session_hash})
        tasks = BackgroundTasks()  # Gradio's `unload` events, run once the stream ends
        response = self.heartbeat.endpoint(session_hash=session_hash, request=request,
                                           background_tasks=tasks,
                                           username=await self._user(request))
        with (self.open_pages.heartbeat(session_hash) if self.open_pages is not None
              else contextlib.nullcontext()):
            await _stream(response, receive, send)
        await tasks()

    async def _serve_events(self, scope: Scope, receive: Receive, send: Send,
                            session_hash: str) -> None:
        assert self.events is not None
        request = self._request(scope, receive, {})
        response = await self.events.endpoint(request=request, session_hash=session_hash)
        await _stream(response, receive, send)

    def _request(self, scope: Scope, receive: Receive, path_params: dict[str, str]
                 ) -> Request:
        return Request({**scope, "app": self.gradio_app, "path_params": path_params}, receive)

    async def _user(self, request: Request) -> str | None:
        if self._current_user is None:
            return None
        user = self._current_user(request)
        return await user if inspect.isawaitable(user) else user


def _route(gradio_app: Any, path: str) -> APIRoute | None:
    found = next((route for route in gradio_app.router.routes
                  if isinstance(route, APIRoute) and route.path == path), None)
    if found is None:  # a Gradio without this route: its own path serves it
        log.warning("Gradio's route %s was not found; it is served as is", path)
    return found


def _route_path(scope: Scope) -> str:
    """The path below the app's root path (`--root-path`), as Starlette routes it."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] in ("", "/"):
        return path[len(root):]
    return path


async def _stream(response: StreamingResponse, receive: Receive, send: Send) -> None:
    """Sends Gradio's stream until it ends or the client goes away. An error inside the
    stream once it has begun (Gradio raises when a session is unknown, after telling the
    page so in the stream) can only end it."""
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": response.raw_headers})
    pump = asyncio.create_task(_pump(response.body_iterator, send))
    watcher = asyncio.create_task(_cancel_on_disconnect(receive, pump))
    try:
        await pump  # until the stream ends, the client goes or the server stops
    except Exception:
        log.debug("a stream ended with an error", exc_info=True)
    finally:
        watcher.cancel()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _pump(body: AsyncIterable[str | bytes | memoryview], send: Send) -> None:
    """Sends Gradio's stream. Gradio's stream does its clean-up when cancelled while it
    waits; one cancelled while a line is being sent is handed the cancellation too."""
    try:
        async for chunk in body:
            await send({"type": "http.response.body", "more_body": True,
                        "body": chunk.encode() if isinstance(chunk, str) else bytes(chunk)})
    except asyncio.CancelledError:
        athrow: Callable[..., Awaitable[Any]] | None = getattr(body, "athrow", None)
        if athrow is not None:
            with contextlib.suppress(StopAsyncIteration, asyncio.CancelledError):
                await athrow(asyncio.CancelledError())


async def _cancel_on_disconnect(receive: Receive, pump: asyncio.Task[None]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    pump.cancel()
