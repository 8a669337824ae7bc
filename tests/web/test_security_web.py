"""The server's own defences, over plain HTTP on 127.0.0.1: the security headers on
every kind of response, and the pace of sign-in attempts per user and per address.

The app is the real server (`build_server`) with a login, served by uvicorn in a
thread. Its engine is the remote one pointed at a closed port on 127.0.0.1: a real
engine in its real failed state, so no model is needed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from bench.procs import free_port
from phi4ui.engines import build_engine
from phi4ui.errors import SettingsError
from phi4ui.settings import load_settings
from phi4ui.web.server import build_server
from phi4ui.web.web_guard import LoginPace, LoginPolicy
from tests.support.threaded_server import served_in_thread

PASSWORDS = {"alice": "alice-right-1", "bob": "bob-right-2", "carol": "carol-right-3",
             "dave": "dave-right-4"}
REFUSAL = re.compile(r"^Too many failed sign-ins for this user or address\. "
                     r"Try again in (\d+) s\.$")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    scratch = tmp_path_factory.mktemp("security-web")
    closed_port = free_port()  # nothing listens there: the engine fails to start
    settings = load_settings([
        "--engine", "remote", "--base-url", f"http://127.0.0.1:{closed_port}/v1",
        "--connect-timeout", "0.5", "--db-path", str(scratch / "answers.db"),
        "--cache-dir", str(scratch / "cache"),
        "--auth", ",".join(f"{user}:{password}" for user, password in PASSWORDS.items()),
    ], environ={})
    with served_in_thread(build_server(settings, build_engine(settings)),
                          ready=_failed_engine_reported) as served:
        yield served.url


def _failed_engine_reported(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).json().get("state") == "failed"
    except (httpx.HTTPError, ValueError):
        return False


def client_from(address: str, url: str) -> httpx.AsyncClient:
    """A client whose connections come from `address` (any 127.x.y.z is this machine)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=30,
                             limits=httpx.Limits(max_connections=200))


async def sign_in(client: httpx.AsyncClient, user: str, password: str, *,
                  multipart: bool = False) -> httpx.Response:
    """Gradio's login form; `multipart` sends it as the page does (FormData)."""
    extra = {"files": {"unused": ("unused.txt", b"")}} if multipart else {}
    return await client.post("/login", data={"username": user, "password": password},
                             **extra)


def refusal_seconds(response: httpx.Response) -> int:
    """The wait a refusal names, checked against its Retry-After header."""
    assert response.status_code == 429, response.text
    match = REFUSAL.match(response.json()["detail"])
    assert match, response.json()
    assert response.headers["retry-after"] == match.group(1)
    return int(match.group(1))


# ---------------------------------------------------------------- headers

def assert_guarded(response: httpx.Response) -> None:
    policy = response.headers.get("content-security-policy", "")
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["img-src"] == "'self' data: blob:"
    assert directives["media-src"] == "'self' data: blob:"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'self' https://huggingface.co https://*.hf.space"
    assert "http:" not in policy and "https: " not in policy and "*;" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_every_kind_of_response_carries_the_security_headers(app_url: str) -> None:
    with httpx.Client(base_url=app_url, timeout=10) as client:
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["state"] == "failed"
        assert_guarded(health)
        assert_guarded(client.get("/"))  # the login page
        refused_file = client.get("/gradio_api/file=/etc/passwd")
        assert refused_file.status_code in (401, 403)
        assert_guarded(refused_file)
        assert client.post("/login", data={"username": "dave",
                                           "password": PASSWORDS["dave"]}).status_code == 200
        page = client.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert_guarded(page)
        assert_guarded(client.get("/config"))
        script = re.search(r'src="([^"]+\.js)"', page.text)
        assert script, "the page names no script"
        asset = client.get(script.group(1))
        assert asset.status_code == 200
        assert_guarded(asset)


# ---------------------------------------------------------------- sign-in pace

def test_a_hundred_wrong_passwords_at_once_are_checked_only_a_few_times(app_url: str) -> None:
    async def scenario() -> None:
        async with client_from("127.0.0.1", app_url) as client:
            answers = await asyncio.gather(*(sign_in(client, "alice", f"guess-{n}")
                                             for n in range(100)))
            checked = [a for a in answers if a.status_code == 400]
            refused = [a for a in answers if a.status_code == 429]
            assert len(checked) <= LoginPolicy().free_failures_per_user
            assert len(checked) + len(refused) == 100
            assert all(a.json()["detail"] == "Incorrect credentials." for a in checked)
            waits = [refusal_seconds(a) for a in refused]
            assert min(waits) >= 1

            # The right password waits too, then works.
            wait = refusal_seconds(await sign_in(client, "alice", PASSWORDS["alice"]))
            await asyncio.sleep(wait)
            right = await sign_in(client, "alice", PASSWORDS["alice"])
            assert right.status_code == 200, right.text
            assert (await client.get("/config")).status_code == 200

    asyncio.run(scenario())


def test_a_user_paused_from_one_address_is_paused_from_every_address(app_url: str) -> None:
    async def scenario() -> None:
        async with client_from("127.0.0.2", app_url) as first, \
                client_from("127.0.0.3", app_url) as second:
            for n in range(LoginPolicy().free_failures_per_user):
                assert (await sign_in(first, "bob", f"guess-{n}",
                                      multipart=n % 2 == 0)).status_code == 400
            refusal_seconds(await sign_in(second, "bob", PASSWORDS["bob"], multipart=True))
            # Another user from the first address is not held back by bob's failures.
            assert (await sign_in(first, "carol", PASSWORDS["carol"])).status_code == 200

    asyncio.run(scenario())


def test_an_address_that_guesses_many_users_is_paused_for_all_of_them(app_url: str) -> None:
    async def scenario() -> None:
        async with client_from("127.0.0.4", app_url) as guesser, \
                client_from("127.0.0.5", app_url) as other:
            for n in range(LoginPolicy().free_failures_per_address):
                assert (await sign_in(guesser, f"user{n}", "password")).status_code == 400
            refusal_seconds(await sign_in(guesser, "carol", PASSWORDS["carol"]))
            assert (await sign_in(other, "carol", PASSWORDS["carol"])).status_code == 200

    asyncio.run(scenario())


def test_failures_and_pauses_are_logged_without_the_password(
        app_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with client_from("127.0.0.6", app_url) as client:
            for n in range(LoginPolicy().free_failures_per_user):
                await sign_in(client, "dave", f"secret-guess-{n}")

    with caplog.at_level(logging.WARNING, logger="phi4ui.web.web_guard"):
        asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name == "phi4ui.web.web_guard"]
    failures = [line for line in lines if line == "Sign-in failed for user 'dave' from 127.0.0.6"]
    assert len(failures) == LoginPolicy().free_failures_per_user
    assert any(line.startswith("Sign-in paused for user 'dave' after 5 failures: next "
                               "attempt in 1 s") for line in lines), lines
    assert not any("secret-guess" in line for line in lines)


def test_the_wait_doubles_after_the_free_failures_up_to_the_cap() -> None:
    now = [0.0]
    pace = LoginPace(LoginPolicy(free_failures_per_user=2, first_delay_s=1.0, max_delay_s=8.0,
                                 free_failures_per_address=100), clock=lambda: now[0])
    keys = [("user", "erin"), ("address", "10.0.0.1")]
    delays = []
    for _ in range(7):
        locked = pace.failed(keys)
        delays.append(locked[0][2] if locked else 0.0)
        now[0] += pace.wait_s(keys)
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    pace.succeeded(("user", "erin"))
    assert pace.wait_s(keys) == 0.0


def test_quiet_keys_are_forgotten_so_made_up_names_cannot_fill_memory() -> None:
    now = [0.0]
    pace = LoginPace(LoginPolicy(max_keys=50, forget_after_s=10.0), clock=lambda: now[0])
    for n in range(200):
        pace.failed([("user", f"made-up-{n}"), ("address", "10.0.0.2")])
        now[0] += 1.0
    assert len(pace) <= 51


def test_attempts_that_are_neither_right_nor_wrong_leave_nothing_behind() -> None:
    now = [0.0]
    pace = LoginPace(LoginPolicy(max_keys=50, forget_after_s=10.0), clock=lambda: now[0])

    async def malformed_attempts() -> None:
        for n in range(200):
            async with pace.turn([("user", f"made-up-{n}"), ("address", f"10.0.1.{n}")]):
                pass  # Gradio answered 422: no failure is counted

    asyncio.run(malformed_attempts())
    assert len(pace) <= 52



def test_frame_ancestors_takes_sources_only() -> None:
    assert load_settings(["--frame-ancestors", "'none'"], environ={}).frame_ancestors == "'none'"
    with pytest.raises(SettingsError, match=r"^--frame-ancestors: must be CSP sources separated "
                                            r"by spaces, e\.g\. 'self' https://example\.org, "
                                            r"got \"'self'; script-src \*\"$"):
        load_settings(["--frame-ancestors", "'self'; script-src *"], environ={})
