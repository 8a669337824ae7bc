"""The page as it is first loaded, made once per address it is reached at.

Every page opened asks for the page (`/`) and its configuration (`/config`): Gradio makes
both anew each time from a deep copy of the whole page's configuration, about 240 KiB
and 220 KiB of JSON for this page (18 and 13 ms of CPU on a quiet machine), in worker
threads that hold Python's lock while the event loop that streams every answer waits for
it. Without sign-in they are the same for every visitor; they differ only by the address
the page is reached at (the Host and X-Forwarded-* headers, the root path) and by the
compression the browser accepts. So each is kept per such address, for a bounded number of
addresses, and sent again as it was made. A request with a query string (a deep link, a
page of a multi-page app), a response that is not a plain 200 or that sets a cookie, and
any page behind a sign-in are passed on untouched. What the app's other middleware adds
per visitor (the visitor cookie, security headers) is added outside, on every response.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CACHED_PATHS = ("/", "/config", "/config/")
# The request's parts that Gradio makes the page's root address from, and the encoding.
KEY_HEADERS = (b"host", b"x-forwarded-host", b"x-forwarded-proto", b"x-gradio-server",
               b"accept-encoding")
ADDRESSES_KEPT = 32  # past this, the least recently used is made again when asked for


@dataclass
class _Response:
    start: Message
    body: list[bytes] = field(default_factory=list)


class PageCache:
    """ASGI middleware in front of the page; install it inside the per-visitor ones."""

    def __init__(self, app: ASGIApp, signed_in: bool = False) -> None:
        self.app = app
        self.signed_in = signed_in
        self.responses: OrderedDict[tuple[Any, ...], _Response] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = self._key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        if (kept := self.responses.get(key)) is not None:
            self.responses.move_to_end(key)
            await send(_copy_of(kept.start))
            for chunk in kept.body[:-1]:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": kept.body[-1]})
            return
        await self.app(scope, receive, self._keeping(key, send))

    def _key(self, scope: Scope) -> tuple[Any, ...] | None:
        if (self.signed_in or scope["type"] != "http" or scope["method"] not in ("GET", "HEAD")
                or scope["path"] not in CACHED_PATHS or scope.get("query_string")):
            return None
        headers = dict(_first_of_each(scope["headers"]))
        server = scope.get("server")  # ASGI allows any iterable: uvicorn's is a tuple
        return (scope["method"], scope["path"], scope.get("scheme"),
                tuple(server) if server is not None else None,
                scope.get("root_path", ""), *(headers.get(name) for name in KEY_HEADERS))

    def _keeping(self, key: tuple[Any, ...], send: Send) -> Send:
        made = _Response(start={})

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                made.start = _copy_of(message)
            elif message["type"] == "http.response.body":
                made.body.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False) and _keepable(made.start):
                    self._keep(key, made)
            await send(message)

        return sending

    def _keep(self, key: tuple[Any, ...], made: _Response) -> None:
        self.responses[key] = made
        while len(self.responses) > ADDRESSES_KEPT:
            self.responses.popitem(last=False)


def _copy_of(start: Message) -> Message:
    """A response's start as made, apart from the one sent on: the middleware outside
    writes into the message it is given (the visitor cookie among the headers), and a
    message kept and sent again as it is would carry one visitor's cookie to the next."""
    return {**start, "headers": list(start.get("headers", []))}


def _first_of_each(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers with the first value of each name, as Gradio reads them."""
    seen: dict[bytes, bytes] = {}
    for name, value in headers:
        seen.setdefault(name.lower(), value)
    return list(seen.items())


def _keepable(start: Message) -> bool:
    return start.get("status") == 200 and not any(
        name.lower() == b"set-cookie" for name, _ in start.get("headers", []))
