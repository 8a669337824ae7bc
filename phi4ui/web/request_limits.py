"""A cap on the size of request bodies other than uploads (which Gradio caps itself at
`--upload-max-mb`): an event's JSON is read whole and parsed on the event loop, so an
unbounded one would hold every other request up. Pure ASGI, counting the bytes as they
arrive, so a body without a Content-Length is bounded too."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# The largest message the page sends is a 100,000-character text (at most 6 bytes each
# in JSON) with its settings; 4 MB leaves room for that and nothing absurd.
MAX_EVENT_BYTES = 4_000_000
UPLOAD_ROUTE = "/upload"


class BodyTooLarge(Exception):
    pass


class RequestLimits:
    def __init__(self, app: Callable[..., Awaitable[None]], *,
                 max_bytes: int = MAX_EVENT_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").endswith(UPLOAD_ROUTE):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, self._counting(receive), sending)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def receiving() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        return receiving

    async def _refuse(self, send: Send) -> None:
        text = (f"This request is larger than the {self.max_bytes // 1_000_000} MB the app "
                "takes for one message. Shorten the message; files go through the upload.")
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        await send({"type": "http.response.body", "body": text.encode()})
