"""The login in front of the MCP server. Gradio mounts its MCP routes beside the page's
without the page's login check, so with `--auth` this middleware asks an agent for the
same user name and password, as HTTP Basic credentials (MCP clients send headers, not
the page's login form). The login name it accepts is handed on in the request's state,
so that answers are recorded with it. Pure ASGI, so streams are not buffered."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

MCP_PATH = "/gradio_api/mcp"
LOGIN_STATE = "mcp_login"


class McpGuard:
    def __init__(self, app: ASGIApp, logins: Sequence[tuple[str, str]]) -> None:
        self.app = app
        self.logins = list(logins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or MCP_PATH not in scope.get("path", ""):
            await self.app(scope, receive, send)
            return
        login = ""
        if self.logins:
            login = self._login(dict(scope.get("headers") or []).get(b"authorization", b""))
            if not login:
                await _unauthorized(send)
                return
        scope.setdefault("state", {})[LOGIN_STATE] = login
        await self.app(scope, receive, send)

    def _login(self, header: bytes) -> str:
        """The user name of valid Basic credentials, or ''."""
        scheme, _, encoded = header.decode("latin-1").partition(" ")
        if scheme.lower() != "basic":
            return ""
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return ""
        found = ""
        for known_user, known_password in self.logins:  # every pair, in constant time each
            if hmac.compare_digest(f"{user}:{password}".encode(),
                                   f"{known_user}:{known_password}".encode()):
                found = known_user
        return found


async def _unauthorized(send: Send) -> None:
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"www-authenticate", b'Basic realm="phi4ui MCP"')]})
    await send({"type": "http.response.body",
                "body": b"The MCP server needs the app's login, as HTTP Basic credentials."})
