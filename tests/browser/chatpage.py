"""The chat page as the tests drive it: what a person clicks and reads, by stable ids.

The page's own ids: `#mm` (input), `#chatbot`, `#cost` (the prompt cost line),
`#session-summary`, `#max-tokens`, `#engine-live`, `#throughput`. The rest are
Gradio's own test ids and labels.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, expect

ANSWER_TIMEOUT_MS = 120_000  # a new image's first token takes 5-30 s on two CPU cores

# Records each distinct length of the first answer's text while it streams.
RECORD_LENGTHS = """() => {
  window.__answerLengths = [];
  const chat = document.querySelector('#chatbot');
  const record = () => {
    const answer = [...chat.querySelectorAll('[data-testid=bot]')]
      .find(bot => !bot.querySelector('.thought-group'));
    if (!answer) return;
    const lengths = window.__answerLengths;
    const length = answer.innerText.length;
    if (lengths[lengths.length - 1] !== length) lengths.push(length);
  };
  new MutationObserver(record).observe(chat, {subtree: true, childList: true,
                                              characterData: true});
}"""


class ChatPage:
    def __init__(self, page: Page, url: str, screenshots: Path) -> None:
        self.page = page
        self.url = url
        self.screenshots = screenshots

    # ------------------------------------------------------------ getting there

    def open(self, query: str = "") -> ChatPage:
        # "networkidle" never comes: Gradio keeps a heartbeat request open.
        self.page.goto(self.url + "/" + query, wait_until="domcontentloaded")
        expect(self.textbox).to_be_visible(timeout=30_000)
        expect(self.page.locator(".p4-state-ready")).to_be_visible(timeout=30_000)
        return self

    # ------------------------------------------------------------ the input

    @property
    def textbox(self) -> Locator:
        return self.page.locator("#mm textarea[data-testid=textbox]")

    @property
    def submit_button(self) -> Locator:
        return self.page.locator("#mm [data-testid=submit-button]")

    @property
    def stop_button(self) -> Locator:
        return self.page.locator("#mm button[aria-label=Stop]")

    @property
    def thumbnails(self) -> Locator:
        return self.page.locator("#mm [aria-label='File thumbnail']")

    @property
    def cost(self) -> Locator:
        return self.page.locator("#cost")

    def attach(self, *paths: Path) -> None:
        before = self.thumbnails.count()
        self.page.locator("#mm input[data-testid=file-upload]").set_input_files(
            [str(p) for p in paths])
        expect(self.thumbnails).to_have_count(before + len(paths), timeout=30_000)

    def type(self, text: str) -> None:
        self.textbox.fill(text)

    def send(self, text: str | None = None) -> None:
        if text is not None:
            self.textbox.fill(text)
        self.textbox.press("Enter")

    def set_max_tokens(self, count: int) -> None:
        """Typed again if the page's own load step, which puts the stored settings back, was
        still on its way and overwrote it (the page itself can be there before that step)."""
        box = self.page.locator("#max-tokens input[type=number]")
        for _ in range(10):
            box.fill(str(count))
            box.press("Enter")
            try:
                expect(box).to_have_value(str(count), timeout=1_000)
                self.page.wait_for_timeout(300)
                if box.input_value() == str(count):
                    return
            except AssertionError:
                continue
        expect(box).to_have_value(str(count))

    # ------------------------------------------------------------ the chat

    @property
    def chat(self) -> Locator:
        return self.page.locator("#chatbot")

    @property
    def user_bubbles(self) -> Locator:
        return self.page.locator("#chatbot [data-testid=user]")

    def answers(self) -> list[str]:
        """The text of each answer, without the statistics and notes under it."""
        bots = self.page.locator("#chatbot [data-testid=bot]").all()
        return [bot.inner_text() for bot in bots if bot.locator(".thought-group").count() == 0]

    def annotations(self) -> list[str]:
        """Titles of the collapsible lines under answers (statistics, notes, stopped)."""
        return [title.inner_text() for title in
                self.page.locator("#chatbot .thought-group .title").all()]

    def statistics(self) -> list[str]:
        return [a for a in self.annotations() if a.startswith("Statistics")]

    def wait_answers(self, count: int, timeout_ms: int = ANSWER_TIMEOUT_MS) -> None:
        """Until the session has `count` finished answers and the input can send again."""
        noun = "answer" if count == 1 else "answers"
        expect(self.page.locator("#session-summary")).to_contain_text(
            f"{count} {noun}", timeout=timeout_ms)
        expect(self.submit_button).to_be_visible(timeout=10_000)

    def record_answer_lengths(self) -> None:
        self.page.evaluate(RECORD_LENGTHS)

    def answer_lengths(self) -> list[int]:
        return list(self.page.evaluate("() => window.__answerLengths"))

    def reveal(self, target: Locator, timeout_s: float = 10.0) -> None:
        """Scrolls `target` into view, again until it stays there: details slide open, and
        a scroll made while they move can miss."""
        deadline = time.monotonic() + timeout_s
        while True:
            target.scroll_into_view_if_needed()
            try:
                expect(target).to_be_in_viewport(timeout=500)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def message_button(self, label: str) -> Locator:
        return self.page.locator(f"#chatbot button[aria-label='{label}']").last

    # ------------------------------------------------------------ the rest of the page

    def toasts(self) -> list[str]:
        return [t.inner_text() for t in self.page.locator("[data-testid=toast-body]").all()]

    def expect_toast(self, pattern: str) -> None:
        expect(self.page.locator("[data-testid=toast-body]").filter(
            has_text=re.compile(pattern))).to_be_visible(timeout=15_000)
        self.page.wait_for_timeout(500)  # it slides in: let a screenshot catch it in place

    def expect_no_error_veil(self) -> None:
        """A refusal leaves the chat and the input in view (Gradio's "Error" veil hidden)."""
        for part in ("#chatbot", "#mm"):
            expect(self.page.locator(f"{part} .error").first).to_be_hidden()

    def shot(self, name: str, **options: Any) -> Path:
        path = self.screenshots / f"{name}.png"
        self.page.screenshot(path=str(path), **options)
        return path
