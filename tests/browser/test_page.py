"""The rest of the page: engine panel, remembered settings, phone width, dark theme."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.chatpage import ChatPage
from tests.browser.conftest import PHONE, watch_requests

pytestmark = pytest.mark.browser


def test_engine_panel_is_live(chat: ChatPage) -> None:
    live = chat.page.locator("#engine-live")
    expect(live).to_contain_text("KV cache in use")
    expect(live).to_contain_text("Requests running / waiting")
    expect(live).to_contain_text("App process memory")
    chat.set_max_tokens(64)
    chat.send("Count from one to twenty.")
    chat.wait_answers(1)
    expect(live).to_contain_text(re.compile(r"Generating now\s+\d+\.\d tok/s"), timeout=10_000)
    # The throughput line has points: one per interval between the timer's snapshots.
    expect(chat.page.locator("#throughput g.mark-line path")).to_have_attribute(
        "d", re.compile(r"^M.*L"), timeout=10_000)
    chat.page.locator("#engine-panel").scroll_into_view_if_needed()
    chat.shot("18-engine-live")

    chat.page.locator("#engine-settings").get_by_text("Engine settings").click()
    settings = chat.page.locator("#engine-settings")
    expect(settings).to_contain_text("Context length")
    expect(settings).to_contain_text("4,096 tokens")
    expect(settings).to_contain_text("vision")
    settings.scroll_into_view_if_needed()
    chat.shot("19-engine-settings")


def test_settings_are_remembered_by_the_browser(chat: ChatPage) -> None:
    system = chat.page.locator("#system-prompt textarea")
    system.fill("Answer in French.")
    system.blur()
    temperature = chat.page.locator("#temperature input[type=number]")
    temperature.fill("0.7")
    temperature.press("Enter")
    chat.page.wait_for_timeout(1000)  # the browser stores them on change

    chat.open()
    expect(chat.page.locator("#system-prompt textarea")).to_have_value("Answer in French.")
    expect(chat.page.locator("#temperature input[type=number]")).to_have_value("0.7")
    chat.shot("20-settings-remembered")

    chat.page.locator("#reset").click()
    expect(chat.page.locator("#temperature input[type=number]")).to_have_value("0")
    expect(chat.page.locator("#system-prompt textarea")).to_have_value(
        "You are a helpful assistant.")


def _new_page(browser: Any, foreign_requests: list[str], **options: Any) -> Any:
    context = browser.new_context(permissions=["microphone", "camera"], **options)
    watch_requests(context, foreign_requests)
    return context.new_page()


def test_phone_width(browser: Any, app_url: str, screenshots: Path,
                     foreign_requests: list[str]) -> None:
    page = _new_page(browser, foreign_requests, viewport=PHONE, is_mobile=True, has_touch=True)
    chat = ChatPage(page, app_url, screenshots).open()
    chat.shot("21-phone-empty")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    expect(chat.textbox).to_be_in_viewport()
    chat.set_max_tokens(32)
    chat.send("Hello from a phone.")
    chat.wait_answers(1)
    chat.textbox.scroll_into_view_if_needed()
    chat.shot("22-phone-answer")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    page.context.close()


def test_dark_theme_follows_the_system(browser: Any, app_url: str, screenshots: Path,
                                      foreign_requests: list[str]) -> None:
    page = _new_page(browser, foreign_requests, viewport={"width": 1366, "height": 768},
                     color_scheme="dark")
    chat = ChatPage(page, app_url, screenshots).open()
    expect(page.locator("body.dark")).to_have_count(1)
    chat.set_max_tokens(32)
    chat.send("Hello in the dark.")
    chat.wait_answers(1)
    chat.shot("23-dark-theme")
    page.context.close()


def test_dark_theme_chosen_in_the_page(chat: ChatPage) -> None:
    expect(chat.page.locator("body.dark")).to_have_count(0)
    chat.page.get_by_text("Settings", exact=True).last.click()
    chat.page.get_by_role("button", name="Dark").click()
    expect(chat.page.locator("body.dark")).to_have_count(1)
