"""The web side of `file_access`: an ASGI middleware in front of the page that

- gives each browser a random visitor cookie (HttpOnly, SameSite=Lax);
- grants a visitor the files it uploads (it reads the upload route's answer);
- refuses (404) a request for a file in the upload folder the visitor was not granted.

Pure ASGI rather than Starlette's `BaseHTTPMiddleware`, which would buffer the
page's streaming responses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import unquote

from phi4ui.page.file_owners import VISITOR_COOKIE, FileOwners, new_visitor

log = logging.getLogger(__name__)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
FILE_ROUTE = "/file="
UPLOAD_ROUTE = "/upload"
COOKIE_MAX_AGE_S = 30 * 24 * 3600


def visitor_of(cookie_header: str) -> str:
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(cookie_header)
    except Exception:  # noqa: BLE001 - a malformed header is a visitor without a cookie
        return ""
    morsel = cookies.get(VISITOR_COOKIE)
    return morsel.value if morsel else ""


class FileGuard:
    def __init__(self, app: Callable[..., Awaitable[None]], owners: FileOwners, *,
                 secure_cookie: bool = False) -> None:
        self.app = app
        self.owners = owners
        self.secure_cookie = secure_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        visitor = visitor_of(headers.get(b"cookie", b"").decode("latin-1"))
        fresh = "" if visitor else new_visitor()
        path = unquote(scope.get("path", ""))
        if FILE_ROUTE in path and not self.owners.may_fetch(visitor, path.split(FILE_ROUTE, 1)[1]):
            log.info("refused a file outside the visitor's own: %s", path)
            await _not_found(send)
            return
        if fresh:
            # The page's own requests made before the cookie arrives see the new visitor.
            scope["headers"] = [*scope.get("headers", []),
                                (b"cookie", f"{VISITOR_COOKIE}={fresh}".encode())]
        uploading = scope.get("method") == "POST" and path.endswith(UPLOAD_ROUTE)
        sender = self._sender(send, visitor or fresh, fresh, uploading)
        await self.app(scope, receive, sender)

    def _sender(self, send: Send, visitor: str, fresh: str, uploading: bool) -> Send:
        body = bytearray()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and fresh:
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"set-cookie", self._cookie(fresh))]
            if uploading and message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body"):
                    self._grant_uploads(visitor, bytes(body))
            await send(message)

        return sending

    def _cookie(self, visitor: str) -> bytes:
        parts = [f"{VISITOR_COOKIE}={visitor}", "Path=/", "HttpOnly", "SameSite=Lax",
                 f"Max-Age={COOKIE_MAX_AGE_S}"]
        if self.secure_cookie:
            parts.append("Secure")
        return "; ".join(parts).encode()

    def _grant_uploads(self, visitor: str, body: bytes) -> None:
        try:
            paths = json.loads(body)
        except ValueError:
            return  # an error page, not a list of uploaded files
        if isinstance(paths, list):
            self.owners.grant(visitor, [p for p in paths if isinstance(p, str)])


async def _not_found(send: Send) -> None:
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": b"Not found."})
