"""The page and its configuration are made once per address the page is reached at, and
never shown to a visitor who reaches it at another one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.procs import wait_until_ready
from phi4ui.page.file_owners import VISITOR_COOKIE
from phi4ui.web.page_cache import ADDRESSES_KEPT, PageCache
from tests.support.apprun import RunningApp, launch_app


class CountingPage:
    """An ASGI app that answers every request with a new body, and counts the requests."""

    def __init__(self, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
                 ) -> None:
        self.made = 0
        self.status = status
        self.headers = headers or []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.made += 1
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"text/html"), *self.headers]})
        await send({"type": "http.response.body", "body": b"page ", "more_body": True})
        await send({"type": "http.response.body", "body": str(self.made).encode()})


def get(app: Any, path: str = "/", headers: dict[str, str] | None = None) -> httpx.Response:
    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://127.0.0.1:7860") as client:
            return await client.get(path, headers=headers)
    return asyncio.run(fetch())


def test_the_page_and_its_configuration_are_made_once_per_address() -> None:
    page = CountingPage()
    cache = PageCache(page)
    assert [get(cache, path).text for path in ("/", "/", "/config", "/config")] == [
        "page 1", "page 1", "page 2", "page 2"]
    assert get(cache, headers={"X-Forwarded-Host": "other.example"}).text == "page 3"
    assert get(cache, headers={"X-Forwarded-Proto": "https"}).text == "page 4"
    assert get(cache, headers={"Accept-Encoding": "br"}).text == "page 5"
    assert get(cache).text == "page 1" and page.made == 5


def test_a_server_address_given_as_a_list_is_kept_by_its_value() -> None:
    # ASGI lets a server give its address as any iterable; Starlette's TestClient sends a
    # list, on which the page failed with "unhashable type".
    page = CountingPage()
    cache = PageCache(page)
    for server in (["testserver", 80], ["testserver", 80], ["other", 80]):
        scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"",
                 "headers": [], "server": server}
        asyncio.run(cache(scope, _nothing_received, _ignore))
    assert page.made == 2


async def _nothing_received() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def _ignore(message: dict[str, Any]) -> None:
    pass


@pytest.mark.parametrize("path", ["/?deep_link=abc", "/gradio_api/info", "/file=x.png"])
def test_other_requests_are_made_every_time(path: str) -> None:
    page = CountingPage()
    cache = PageCache(page)
    assert get(cache, path).text == "page 1" and get(cache, path).text == "page 2"


@pytest.mark.parametrize("page", [CountingPage(status=500),
                                  CountingPage(headers=[(b"set-cookie", b"access-token=x")])],
                         ids=["an error", "one that sets a cookie"])
def test_a_response_that_is_not_the_plain_page_is_not_kept(page: CountingPage) -> None:
    cache = PageCache(page)
    assert get(cache).text == "page 1" and get(cache).text == "page 2"


def test_a_page_behind_a_sign_in_is_made_for_each_visitor() -> None:
    page = CountingPage()
    cache = PageCache(page, signed_in=True)
    assert get(cache).text == "page 1" and get(cache).text == "page 2"


def test_a_visitor_making_up_addresses_only_pushes_out_the_oldest() -> None:
    page = CountingPage()
    cache = PageCache(page)
    for n in range(ADDRESSES_KEPT + 5):
        get(cache, headers={"Host": f"made-up-{n}.example"})
    assert len(cache.responses) == ADDRESSES_KEPT
    assert get(cache, headers={"Host": f"made-up-{ADDRESSES_KEPT + 4}.example"}).text == \
        f"page {ADDRESSES_KEPT + 5}"  # kept


# ---------------------------------------------------------------- over HTTP, as an attacker

@pytest.fixture(scope="module")
def app(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    # The page serves while its engine's server is down.
    running = launch_app(checkpoint, tmp_path_factory.mktemp("page-cache"), "--engine",
                         "remote", "--base-url", "http://127.0.0.1:9/v1")
    try:
        wait_until_ready(running.process, lambda: _page_served(running.url), name="the app",
                         timeout_s=120, log=running.log, every_s=0.5)
        yield running
    finally:
        running.stop()


def _page_served(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code in (200, 503)
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("path", ["/", "/config"])
def test_a_page_asked_for_at_another_address_is_never_shown_to_others(
        app: RunningApp, path: str) -> None:
    poisoned = httpx.get(app.url + path, headers={"X-Forwarded-Host": "evil.example"},
                         timeout=30)
    assert poisoned.status_code == 200 and "evil.example" in poisoned.text
    for _ in range(2):
        plain = httpx.get(app.url + path, timeout=30)
        assert plain.status_code == 200 and "evil.example" not in plain.text


def test_every_visitor_of_the_kept_page_gets_a_cookie_of_their_own(app: RunningApp) -> None:
    first, second = (httpx.get(app.url + "/", timeout=30) for _ in range(2))
    assert first.text == second.text  # the second was kept
    cookies = [response.headers.get("set-cookie", "") for response in (first, second)]
    assert all(cookies) and cookies[0] != cookies[1]
    assert first.headers.get("content-security-policy") == \
        second.headers.get("content-security-policy")


def test_a_visitor_is_never_handed_another_visitor_s_cookie(app: RunningApp) -> None:
    # The kept page's start was the very message the guard outside then wrote each new
    # visitor's cookie into: later visitors got earlier ones' cookies as well as their own,
    # and a returning visitor was made into the last new one (whose files it could fetch).
    with httpx.Client(timeout=30) as returning:
        returning.get(app.url + "/")
        own = returning.cookies[VISITOR_COOKIE]
        returning.get(app.url + "/")  # a page with no cookie to set: this one is kept
        newcomers = [httpx.get(app.url + "/", timeout=30) for _ in range(3)]
        again = returning.get(app.url + "/")
        assert again.status_code == 200 and again.headers.get_list("set-cookie") == []
        assert returning.cookies[VISITOR_COOKIE] == own
    handed = [response.headers.get_list("set-cookie") for response in newcomers]
    assert [len(cookies) for cookies in handed] == [1, 1, 1]
    values = {cookies[0].split(";")[0] for cookies in handed}
    assert len(values) == 3 and f"{VISITOR_COOKIE}={own}" not in values

