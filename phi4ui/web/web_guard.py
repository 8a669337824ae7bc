"""What every HTTP response carries, and the pace of sign-in attempts.

- `SecurityHeaders`: a Content-Security-Policy that lets the page load and connect
  only to its own origin (images and media also from `data:` and `blob:`), with
  `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`, on every
  response: the page, the API, files and `/healthz`.
- `LoginThrottle`: Gradio's `POST /login` answers wrong passwords at once, as fast
  as they come. Per user name and per client address, failures beyond a few free
  ones make the next attempt wait, twice as long each time up to a cap; attempts for
  the same name or address are checked one at a time, and an early one is refused
  with HTTP 429 and `Retry-After`. A success clears the name's count, never the
  address's (one good account must not reset the count of another's guesses).

Both are plain ASGI middleware; `install` adds them to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from phi4ui.settings import Settings

log = logging.getLogger(__name__)
LOGIN_BODY_MAX_BYTES = 64 * 1024
SHOWN_NAME_MAX = 64


def content_security_policy(frame_ancestors: str) -> str:
    """The page's policy. Gradio's page needs inline scripts and styles, and runs the
    `js=` of events through the AsyncFunction constructor (hence 'unsafe-eval'); the
    policy's work here is to keep every load and connection on this origin."""
    directives = {
        "default-src": "'self'",
        "script-src": "'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data: blob:",
        "media-src": "'self' data: blob:",
        "font-src": "'self' data:",
        "connect-src": "'self' data: blob:",  # recordings are read back from blob: URLs
        "worker-src": "'self' blob:",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": frame_ancestors,
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def install(app: Any, settings: Settings) -> None:
    """Adds the security headers to every response of `app`, and the sign-in pace when
    the settings require a login. Call it before the server starts."""
    if settings.logins():
        app.add_middleware(LoginThrottle, pace=LoginPace())
    # Added last, so outermost: refusals from the throttle carry the headers too.
    app.add_middleware(SecurityHeaders, headers={
        "content-security-policy": content_security_policy(settings.frame_ancestors),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    })


# ---------------------------------------------------------------- headers

class SecurityHeaders:
    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(k.encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ---------------------------------------------------------------- sign-in pace

@dataclass(frozen=True)
class LoginPolicy:
    free_failures_per_user: int = 5
    free_failures_per_address: int = 20  # people behind one NAT share an address
    first_delay_s: float = 1.0
    max_delay_s: float = 300.0
    forget_after_s: float = 900.0  # a quiet key's failures are forgotten
    max_keys: int = 10_000


@dataclass
class _Key:
    failures: int = 0
    locked_until: float = 0.0
    last_failure: float = 0.0
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)


class LoginPace:
    """Failure counts and waits per key, ("user", name) or ("address", host)."""

    def __init__(self, policy: LoginPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or LoginPolicy()
        self.clock = clock
        self._keys: dict[tuple[str, str], _Key] = {}

    def __len__(self) -> int:
        """How many names and addresses are remembered."""
        return len(self._keys)

    @contextlib.asynccontextmanager
    async def turn(self, keys: list[tuple[str, str]]) -> AsyncIterator[None]:
        """Holds the keys' locks, always in the order given (user, then address), so
        that attempts for one name or address are checked one at a time."""
        async with contextlib.AsyncExitStack() as stack:
            for key in keys:
                await stack.enter_async_context(self._key(key).turn)
            yield
        # Every attempt makes keys, also one Gradio refuses as malformed (no failure).
        self._prune(self.clock())

    def wait_s(self, keys: list[tuple[str, str]]) -> float:
        """Seconds until an attempt for all `keys` may be checked; 0 when it may now."""
        now = self.clock()
        return max([0.0, *(self._key(key).locked_until - now for key in keys)])

    def failed(self, keys: list[tuple[str, str]]) -> list[tuple[tuple[str, str], int, float]]:
        """Counts a failure; returns (key, failures, delay) for each key it locks."""
        now = self.clock()
        locked = []
        for key in keys:
            state = self._key(key)
            if now - state.last_failure > self.policy.forget_after_s:
                state.failures = 0
            state.failures += 1
            state.last_failure = now
            delay = self._delay(key[0], state.failures)
            if delay > 0:
                state.locked_until = now + delay
                locked.append((key, state.failures, delay))
        self._prune(now)
        return locked

    def succeeded(self, user_key: tuple[str, str]) -> None:
        state = self._keys.get(user_key)
        if state is not None:
            state.failures, state.locked_until = 0, 0.0

    def _delay(self, kind: str, failures: int) -> float:
        free = (self.policy.free_failures_per_user if kind == "user"
                else self.policy.free_failures_per_address)
        if failures < free:
            return 0.0
        return min(self.policy.max_delay_s, self.policy.first_delay_s * 2 ** (failures - free))

    def _key(self, key: tuple[str, str]) -> _Key:
        return self._keys.setdefault(key, _Key())

    def _prune(self, now: float) -> None:
        """Forgets keys that are quiet and unlocked, so that made-up names cannot fill
        the memory; past `max_keys`, the oldest unlocked ones go too."""
        if len(self._keys) <= self.policy.max_keys:
            return
        idle = [(state.last_failure, key) for key, state in self._keys.items()
                if state.locked_until <= now and not state.turn.locked()]
        idle.sort()
        quiet = [key for last, key in idle if now - last > self.policy.forget_after_s]
        excess = len(self._keys) - self.policy.max_keys
        for key in quiet or [key for _, key in idle[:excess]]:
            del self._keys[key]


class LoginThrottle:
    """Paces `POST /login` (Gradio's form login) with a `LoginPace`."""

    def __init__(self, app: ASGIApp, pace: LoginPace) -> None:
        self.app = app
        self.pace = pace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_login(scope):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            await _refuse(send, 413, "The sign-in form is too large.")
            return
        user = (await _form_user(scope, body))[:256]
        address = (scope.get("client") or ("unknown", 0))[0]
        keys = [("user", user), ("address", address)]
        async with self.pace.turn(keys):
            wait = self.pace.wait_s(keys)
            if wait > 0:
                seconds = math.ceil(wait)
                await _refuse(send, 429, "Too many failed sign-ins for this user or address. "
                              f"Try again in {seconds} s.", retry_after=seconds)
                return
            status = await _forward(self.app, scope, _replay(body, receive), send)
            if status == 200:
                self.pace.succeeded(keys[0])
            elif status in (400, 401):
                self._count_failure(keys, user, address)

    def _count_failure(self, keys: list[tuple[str, str]], user: str, address: str) -> None:
        shown = user[:SHOWN_NAME_MAX]
        log.warning("Sign-in failed for user %r from %s", shown, address)
        for (kind, _), failures, delay in self.pace.failed(keys):
            who = f"user {shown!r}" if kind == "user" else f"address {address}"
            log.warning("Sign-in paused for %s after %d failures: next attempt in %.0f s "
                        "(last attempt: user %r from %s)", who, failures, delay, shown, address)


def _is_login(scope: Scope) -> bool:
    # Mounted at "/", Gradio serves /login and /login/; behind a proxy that keeps its
    # prefix the path may start with it.
    return (scope["type"] == "http" and scope["method"] == "POST"
            and scope["path"].rstrip("/").endswith("/login"))


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None past LOGIN_BODY_MAX_BYTES."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > LOGIN_BODY_MAX_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, then: Receive | None = None) -> Receive:
    """A receive that gives `body` again, then passes on to `then` (the client's own,
    which tells of a disconnect); without `then` it waits."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if then is not None:
            return await then()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


async def _form_user(scope: Scope, body: bytes) -> str:
    """The form's user name, as Gradio reads it (stripped); "" when there is none."""
    form: FormData | None = None
    try:
        form = await Request(scope, _replay(body)).form()
        value = form.get("username", "")
        return value.strip() if isinstance(value, str) else ""
    except Exception:  # noqa: BLE001 - a malformed form is Gradio's to refuse
        return ""
    finally:
        if form is not None:
            await form.close()


async def _forward(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> int:
    """Runs the request through `app`; returns the response's status."""
    status = 0

    async def watch(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        await send(message)

    await app(scope, receive, watch)
    return status


async def _refuse(send: Send, status: int, message: str, *,
                  retry_after: int | None = None) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

