"""Chatting: send, streaming, statistics, stop, retry, undo, edit, examples, bad uploads."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.chatpage import ChatPage
from tests.browser.conftest import ROOT
from tests.support.apprun import health

pytestmark = pytest.mark.browser


def test_typed_message_streams_an_answer_with_statistics(chat: ChatPage) -> None:
    chat.shot("01-empty-page")
    chat.set_max_tokens(96)
    chat.type("Tell me a short story about a lighthouse.")
    expect(chat.cost).to_contain_text("prompt so far ≈")
    chat.record_answer_lengths()

    chat.send()
    expect(chat.user_bubbles).to_have_count(1)
    chat.wait_answers(1)

    lengths = chat.answer_lengths()
    assert len(lengths) >= 3, f"the answer arrived in {len(lengths)} steps: {lengths}"
    assert lengths == sorted(lengths)
    statistics = chat.statistics()
    assert len(statistics) == 1
    assert "first token" in statistics[0] and "tok/s" in statistics[0]
    assert "96 tokens" in statistics[0]
    expect(chat.page.locator("#session-summary")).to_contain_text("mean first token")
    expect(chat.textbox).to_have_value("")
    chat.shot("02-text-answer")

    chat.page.locator("#chatbot button[aria-label='Copy message']").nth(1).click()
    copied = chat.page.evaluate("() => navigator.clipboard.readText()")
    assert copied.strip() == chat.answers()[0].strip()

    chat.page.locator("#chatbot .thought-group .title").first.click()
    details = chat.page.locator("#chatbot .thought-group table").first
    expect(details).to_be_visible()
    expect(details).to_contain_text("Time to first token")
    expect(details).to_contain_text("Engine queue / prefill / decode")
    chat.reveal(details.locator("tr").last)
    chat.shot("03-statistics-open")


def answer_length(chat: ChatPage) -> int:
    """The partial answer's length (an answer stopped at once may show no bubble)."""
    answers = chat.answers()
    return len(answers[0]) if answers else 0


def test_sending_empties_the_cost_line_without_asking_the_server(chat: ChatPage) -> None:
    """The input that sending empties needs no cost preview from the server; an input the
    person empties still gets one (the line empties too)."""
    preview = chat.page.evaluate(
        "() => window.gradio_config.dependencies.find(d => d.api_name === 'preview').id")
    asked: list[int] = []

    def note(request: Any) -> None:
        if request.method == "POST" and request.url.endswith("/run/predict"):
            asked.append(json.loads(request.post_data or "{}").get("fn_index"))

    chat.page.on("request", note)
    chat.set_max_tokens(16)
    chat.type("How far can a lighthouse be seen?")
    expect(chat.cost).to_contain_text("prompt so far ≈")
    assert preview in asked  # typing asks for it
    asked.clear()
    chat.send()
    expect(chat.cost).to_have_text("")
    chat.wait_answers(1)
    assert preview not in asked

    chat.type("And at night?")
    expect(chat.cost).to_contain_text("prompt so far ≈")
    asked.clear()
    chat.type("")
    expect(chat.cost).to_have_text("")
    assert preview in asked


def test_stop_ends_the_answer_and_frees_the_engine(chat: ChatPage, app_url: str) -> None:
    chat.set_max_tokens(3584)
    wait_for_running(app_url, 0)  # so that the request seen running below is this one
    chat.send("Write a very long essay about the sea.")
    expect(chat.stop_button).to_be_visible()
    # The engine is writing the answer. (Random weights may write only blanks for a long
    # while, so the visible text does not tell.)
    wait_for_running(app_url, 1, timeout_s=60)
    expect(chat.submit_button).to_be_hidden()
    # Sending waits while an answer is written: the message stays in the input.
    chat.send("Sent while the answer is written.")
    chat.page.wait_for_timeout(300)
    expect(chat.textbox).to_have_value("Sent while the answer is written.")
    expect(chat.user_bubbles).to_have_count(1)
    chat.expect_no_error_veil()
    # On a busy CPU Playwright's wait for a stable element can outlast the answer, so the
    # click is dispatched to the button directly.
    chat.stop_button.dispatch_event("click")
    chat.type("The next question, typed after the stop.")  # the input is usable again

    expect(chat.page.locator("#chatbot .thought-group .title").last).to_contain_text(
        "Stopped", timeout=15_000)
    expect(chat.submit_button).to_be_visible()
    stopped_at = answer_length(chat)
    title = chat.annotations()[-1]
    if stopped_at:  # what was shown was counted: the line says how far the answer got
        assert re.fullmatch(r"Stopped · first token .+ · [1-9]\d* tokens in .+", title), title
    chat.shot("04-stopped")
    wait_for_running(app_url, 0)
    chat.page.wait_for_timeout(500)
    assert answer_length(chat) == stopped_at, "the answer kept growing after Stop"
    assert chat.statistics() == []
    expect(chat.textbox).to_have_value("The next question, typed after the stop.")


def wait_for_running(app_url: str, count: int, timeout_s: float = 15) -> None:
    """Until the engine runs `count` requests, as /healthz reports it."""
    deadline = time.monotonic() + timeout_s
    while (state := health(app_url)) is None or state["running"] != count:
        assert time.monotonic() < deadline, f"the engine does not run {count}: {state}"
        time.sleep(0.2)


def test_retry_then_undo(chat: ChatPage) -> None:
    chat.set_max_tokens(24)
    chat.send("Name three colours.")
    chat.wait_answers(1)

    chat.message_button("Retry").click()
    chat.wait_answers(2)
    assert len(chat.answers()) == 1, "retry replaces the answer"
    assert len(chat.statistics()) == 1, "and the statistics that went with it"
    expect(chat.user_bubbles).to_have_count(1)
    chat.shot("05-retried")

    chat.message_button("Undo").click()
    expect(chat.user_bubbles).to_have_count(0)
    assert chat.answers() == [] and chat.annotations() == []
    expect(chat.textbox).to_have_value("Name three colours.")
    chat.shot("06-undone")


def test_edit_a_message_answers_it_again(chat: ChatPage) -> None:
    chat.set_max_tokens(24)
    chat.send("Name three fruits.")
    chat.wait_answers(1)

    chat.message_button("Edit").click()
    editor = chat.page.locator("#chatbot textarea")
    editor.fill("Name three vegetables.")
    chat.page.locator("#chatbot button[aria-label='Submit']").click()

    chat.wait_answers(2)
    expect(chat.user_bubbles).to_have_count(1)
    expect(chat.user_bubbles.first).to_have_text("Name three vegetables.")
    assert len(chat.answers()) == 1 and len(chat.statistics()) == 1
    chat.shot("07-edited")


def test_clear_empties_the_chat(chat: ChatPage) -> None:
    chat.set_max_tokens(16)
    chat.send("Hello.")
    chat.wait_answers(1)
    chat.page.locator("#chatbot button[aria-label='Clear']").click()
    expect(chat.user_bubbles).to_have_count(0)
    assert chat.answers() == []


def test_an_example_fills_the_input(chat: ChatPage) -> None:
    chat.page.locator("#chatbot button[aria-label^='Select example 5']").click()

    expect(chat.textbox).to_have_value("Answer the spoken question about the picture.")
    expect(chat.thumbnails).to_have_count(2)
    expect(chat.cost).to_contain_text("1 image")
    expect(chat.cost).to_contain_text("audio 3.5 s")
    expect(chat.user_bubbles).to_have_count(0)  # filled, not sent
    chat.shot("08-example-filled")


def test_attachments_over_the_limit_are_flagged_before_sending(chat: ChatPage) -> None:
    house, chart = (ROOT / "assets" / name for name in ("house.png", "chart.png"))
    chat.attach(house, chart)
    expect(chat.cost).to_contain_text("2 images ·")
    expect(chat.cost).not_to_contain_text("⚠")
    chat.attach(house)
    expect(chat.cost).to_contain_text("at most 2 per prompt")
    chat.send("Compare them.")
    chat.expect_toast("at most 2 per prompt")
    chat.expect_no_error_veil()
    expect(chat.user_bubbles).to_have_count(0)
    expect(chat.thumbnails).to_have_count(3)
    chat.shot("09-too-many-images")


def test_a_bad_upload_is_refused_and_the_chat_kept(chat: ChatPage, tmp_path: Path) -> None:
    chat.set_max_tokens(16)
    chat.send("Hello.")
    chat.wait_answers(1)
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("This is a shopping list, not a recording.\n")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)

    chat.attach(not_audio)
    expect(chat.cost).to_contain_text("notes.wav")
    chat.send("What do you hear?")
    chat.expect_toast("notes.wav")
    chat.shot("10-bad-audio-refused")

    chat.page.locator("#mm [aria-label='Remove file'], #mm button.delete-button").first.click()
    expect(chat.thumbnails).to_have_count(0)
    chat.attach(broken)
    chat.send("What do you see?")
    chat.expect_toast("broken.png")
    chat.expect_no_error_veil()

    expect(chat.user_bubbles).to_have_count(1)
    assert len(chat.answers()) == 1
    expect(chat.textbox).to_have_value("What do you see?")
    expect(chat.thumbnails).to_have_count(1)
    assert "Traceback" not in chat.page.content()
    chat.shot("11-bad-image-refused")
