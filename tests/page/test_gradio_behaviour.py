"""The Gradio behaviours that `phi4ui.page.gradio_workarounds` relies on, checked over HTTP on
a small Blocks of their own, launched on 127.0.0.1 and called as the page calls it. When a
Gradio upgrade changes one of them, its test fails here: change or drop the workaround then.
(What only a browser shows, the error veil and the input's buttons, is checked in
`tests/browser/test_gradio_behaviour.py`.)"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import gradio as gr
import pytest

from bench.procs import free_port
from phi4ui.page.gradio_workarounds import Refusal, tell_refusals
from tests.support.pageclient import PageClient

REASON = "Only your own messages can be edited."


async def warn(text: str) -> str:
    gr.Warning(f"careful: {text}")
    return "done"


async def refuse(text: str, refusal: Refusal) -> str:
    refusal.refuse(f"{REASON} ({text})")


@pytest.fixture(scope="module")
def client() -> Iterator[PageClient]:
    with gr.Blocks(analytics_enabled=False) as demo:
        text = gr.Textbox(elem_id="text")
        out = gr.Textbox(elem_id="out")
        refusal = gr.State(Refusal())
        text.submit(warn, [text], [out], queue=False)
        text.change(warn, [text], [out])  # queued
        refused = out.submit(refuse, [text, refusal], [out], queue=False)
        tell_refusals([refused], refusal)
    demo.queue()
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(),
                            prevent_thread_lock=True, quiet=True, show_error=False)
    client = PageClient(url.rstrip("/"))
    try:
        yield client
    finally:
        client.close()
        demo.close()


def failure_step_after(client: PageClient, step: dict[str, Any]) -> dict[str, Any]:
    return next(d for d in client.dependencies() if d.get("trigger_after") == step["id"]
                and d.get("trigger_only_on_failure"))


def test_a_warning_from_an_unqueued_step_never_reaches_the_page(client: PageClient) -> None:
    """Why `Refusal` exists: the page would never see a refusal's `gr.Warning`."""
    with warnings.catch_warnings(record=True) as printed:
        warnings.simplefilter("always")
        result = client.call(client.dependency("text", "submit"), ["hello"])
    assert result.success and result.data == ["done"]
    assert "careful" not in result.raw and result.messages == []
    assert "careful: hello" in [str(w.message) for w in printed]  # only the server saw it


def test_a_warning_from_a_queued_step_is_sent_as_a_toast(client: PageClient) -> None:
    """Why `tell_refusal` is queued: there, the same warning reaches the page."""
    result = client.call(client.dependency("text", "change"), ["hello"])
    assert result.success and result.messages == ["careful: hello"]


def test_an_unqueued_step_that_refuses_fails_without_a_toast(client: PageClient) -> None:
    """`gr.Error(visible=False)` ends the chain as failed and asks for no toast of its own."""
    result = client.call(client.dependency("out", "submit"), ["hi", None])
    assert not result.success
    payload = json.loads(result.raw)
    assert payload["visible"] is False
    assert payload["error"] == f"{REASON} (hi)"


def test_the_queued_failure_step_tells_the_reason_once(client: PageClient) -> None:
    """`.failure` chains a step that the page runs only after the step before it failed;
    it is queued, so its warning is a toast, and the state carries the reason to it."""
    refused = client.dependency("out", "submit")
    tell = failure_step_after(client, refused)
    assert tell["queue"] is not False and not tell.get("trigger_only_on_success")
    client.call(refused, ["hi", None])
    assert client.call(tell, [None]).messages == [f"{REASON} (hi)"]
    assert client.call(tell, [None]).messages == []  # told once
