"""The Gradio behaviours behind `phi4ui.page.gradio_workarounds` that only a browser shows,
checked in Chromium on a small Blocks of their own (no engine), once without the workarounds'
CSS, to see Gradio's own behaviour, and once with it. When a Gradio upgrade changes one of
them, its test fails here: change or drop the workaround then."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gradio as gr
import pytest
from playwright.sync_api import Page, expect

from bench.procs import free_port
from phi4ui.page.chat_tab import theme
from phi4ui.page.examples import ASSETS
from phi4ui.page.gradio_workarounds import CSS, Refusal, answering_js, tell_refusals

pytestmark = pytest.mark.browser

REASON = "That message cannot be sent."


async def refuse(message: Any, refusal: Refusal) -> tuple[Any, Any]:
    refusal.refuse(REASON)


def count_up(count: float) -> float:
    return count + 1


def launch(css: str | None) -> tuple[gr.Blocks, str]:
    """The chat's input and chat, with a send step that always refuses, wired as the page's."""
    with gr.Blocks(analytics_enabled=False) as demo:
        chatbot = gr.Chatbot(elem_id="chatbot")
        textbox = gr.MultimodalTextbox(elem_id="mm", submit_btn=True, stop_btn=True)
        refusal = gr.State(Refusal())
        refused = textbox.submit(refuse, [textbox, refusal], [chatbot, textbox], queue=False,
                                 show_progress="hidden")
        tell_refusals([refused], refusal)
    demo.queue()
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(),
                            prevent_thread_lock=True, quiet=True, theme=theme(), css=css)
    return demo, url


@pytest.fixture(scope="module", params=["gradio", "workarounds"])
def demo(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    blocks, url = launch(CSS if request.param == "workarounds" else None)
    try:
        yield request.param, url
    finally:
        blocks.close()


def open_and_refuse(page: Page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    textbox = page.locator("#mm textarea[data-testid=textbox]")
    textbox.fill("hello")
    textbox.press("Enter")


def test_a_refused_step_is_told_by_the_queued_failure_step(page: Page, demo: tuple[str, str]
                                                          ) -> None:
    """The browser runs the `.failure` step after an unqueued step failed, and shows its toast
    (and nothing else: the refused step's own error asks for none)."""
    _, url = demo
    open_and_refuse(page, url)
    toasts = page.locator("[data-testid=toast-body]")
    expect(toasts.filter(has_text=REASON)).to_be_visible(timeout=15_000)
    page.wait_for_timeout(1000)
    expect(toasts).to_have_count(1)


def test_gradio_veils_a_refused_steps_outputs_and_the_css_lifts_it(
        page: Page, demo: tuple[str, str]) -> None:
    """Gradio marks the outputs of a failed step with an "Error" veil, even with its progress
    hidden; the workarounds' CSS hides it for the chat and the input."""
    kind, url = demo
    open_and_refuse(page, url)
    expect(page.locator("[data-testid=toast-body]")).to_be_visible(timeout=15_000)
    for part in ("#chatbot", "#mm"):
        veil = page.locator(f"{part} .wrap:has(> .error)").first
        expect(veil).to_be_attached()
        if kind == "gradio":
            expect(veil).to_be_visible()
            expect(veil).to_contain_text("Error")
        else:
            expect(veil).to_be_hidden()


def test_the_input_shows_both_its_buttons_and_the_css_shows_one(
        page: Page, demo: tuple[str, str]) -> None:
    """With `submit_btn` and `stop_btn` both on, Gradio shows Send and Stop side by side;
    the body class that `answering_js` sets picks one, with no update of the textbox."""
    kind, url = demo
    page.goto(url, wait_until="domcontentloaded")
    send = page.locator("#mm [data-testid=submit-button]")
    stop = page.locator('#mm button[aria-label="Stop"]')
    expect(send).to_be_visible(timeout=30_000)
    if kind == "gradio":
        expect(stop).to_be_visible()
        return
    expect(stop).to_be_hidden()
    page.evaluate(answering_js(True))
    expect(stop).to_be_visible()
    expect(send).to_be_hidden()
    page.evaluate(answering_js(False))
    expect(send).to_be_visible()
    expect(stop).to_be_hidden()



def test_files_set_by_a_step_fire_no_change_event(page: Page) -> None:
    """Why the camera's step is followed by the cost preview (`then_as_if_changed`): a step
    that sets the textbox's text fires its change event, one that sets only its files not."""
    picture = {"text": "", "files": [str(ASSETS / "house.png")]}
    with gr.Blocks(analytics_enabled=False) as demo:
        textbox = gr.MultimodalTextbox(elem_id="mm")
        changes = gr.Number(0, elem_id="changes")
        gr.Button("Files", elem_id="files").click(lambda: picture, None, [textbox], queue=False)
        gr.Button("Text", elem_id="text").click(
            lambda: {"text": "set by a step", "files": []}, None, [textbox], queue=False)
        textbox.change(count_up, [changes], [changes], queue=False)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(),
                            prevent_thread_lock=True, quiet=True, theme=theme(),
                            allowed_paths=[str(ASSETS)])
    try:
        page.goto(url, wait_until="domcontentloaded")
        page.locator("#files").click()
        expect(page.locator("#mm [aria-label='File thumbnail']")).to_have_count(1, timeout=15_000)
        page.wait_for_timeout(2000)  # a change event would have counted by now
        expect(page.locator("#changes input")).to_have_value("0")
        page.locator("#text").click()
        expect(page.locator("#mm textarea")).to_have_value("set by a step", timeout=15_000)
        expect(page.locator("#changes input")).to_have_value("1", timeout=10_000)
    finally:
        demo.close()


def slowly(text: str = "") -> str:
    time.sleep(2.0)
    return "done"


def test_a_step_with_no_progress_targets_shows_no_status_on_its_outputs(page: Page) -> None:
    """Why hidden steps name no progress target (`NO_PROGRESS`): Gradio's browser side keeps
    the loading status of every progress target of every step that ran, and refreshes them
    all on each streamed update. An empty list means none (not, as None does, the outputs):
    here with progress shown, so that it can be seen."""
    with gr.Blocks(analytics_enabled=False) as demo:
        shown = gr.Markdown("shown", elem_id="shown")
        untargeted = gr.Markdown("untargeted", elem_id="untargeted")
        gr.Button("A", elem_id="a").click(slowly, None, [shown], show_progress="full")
        gr.Button("B", elem_id="b").click(slowly, None, [untargeted], show_progress="full",
                                          show_progress_on=[])
    demo.queue()
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(),
                            prevent_thread_lock=True, quiet=True, theme=theme())
    try:
        page.goto(url, wait_until="domcontentloaded")
        for button, target in (("#a", "#shown"), ("#b", "#untargeted")):
            page.locator(button).click()
            page.wait_for_timeout(700)  # the step runs for 2 s
            tracking = page.locator(f"{target} .eta-bar, {target} .progress-text, "
                                    f"{target} .meta-text").count()
            if target == "#shown":
                assert tracking > 0, "Gradio shows no status on a step's outputs any more"
            else:
                assert tracking == 0, "Gradio shows a status on outputs no step targets"
            expect(page.locator(target)).to_contain_text("done", timeout=10_000)
    finally:
        demo.close()
