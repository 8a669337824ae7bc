"""The chat tab and the page's frame: the layout only. `chat_wiring` says when each step
runs and `chat_handlers` what it does; the page reaches the engine through
`phi4ui.core.answer_stream` and knows nothing of vLLM, media decoding or prompts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from phi4ui.core.conversation import Conversation
from phi4ui.core.engine import Engine
from phi4ui.core.generation_settings import (
    CARD_MAX_NEW_TOKENS,
    DEFAULT_MAX_TOKENS,
    TEMPERATURE_RANGE,
    TOP_P_RANGE,
    GenerationSettings,
)
from phi4ui.core.session_summary import SessionSummary
from phi4ui.evaluation.store import Store
from phi4ui.page import panels
from phi4ui.page.batch_tab import build_batch_tab
from phi4ui.page.chat_evaluation import build_chat_evaluation
from phi4ui.page.chat_handlers import PLOT_WINDOW_S, ChatHandlers, max_new_tokens, rates_frame
from phi4ui.page.chat_wiring import ChatParts, wire_chat, wire_panels
from phi4ui.page.examples import ASSETS, EXAMPLES
from phi4ui.page.files import PageFiles
from phi4ui.page.gradio_workarounds import Refusal
from phi4ui.page.review_tab import build_review_tab
from phi4ui.page.runs_tab import build_runs_tab
from phi4ui.page.side_by_side_tab import build_side_by_side_tab

CSS_PATH = ASSETS / "style.css"
# Settings are not confidential: a fixed key keeps them across app restarts.
SETTINGS_KEY = "phi4ui-generation-settings"
SETTINGS_SECRET = "phi4ui-settings-not-secret"


def theme() -> gr.themes.Base:
    """Soft, with the visitor's system fonts: the page loads nothing from other hosts."""
    return gr.themes.Soft(
        primary_hue="indigo", secondary_hue="sky", neutral_hue="slate",
        font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )


def build_page(engine: Engine, store: Store | None, files: PageFiles, *,
               everyone_may_review: bool = True,
               forgotten: Callable[[str | None], str | None] = lambda _: None) -> gr.Blocks:
    """The page. What the browser sends back of the chat is never trusted: each session's
    conversation lives on the server, and only files `files` lets its visitor use are read.
    `everyone_may_review`: whether every visitor may see every recorded answer;
    `forgotten`: why a session's conversation was let go on the server, asked once."""
    files.make_public(path for example in EXAMPLES for path in example.paths())
    with gr.Blocks(title="phi4ui · Phi-4-multimodal", analytics_enabled=False) as page:
        parts = _render(engine, store, files, everyone_may_review)
        handlers = ChatHandlers(engine, store, files, forgotten)
        wire_chat(parts, handlers)
        wire_panels(page, parts, handlers)
    return page


def _render(engine: Engine, store: Store | None, files: PageFiles,
            everyone_may_review: bool) -> ChatParts:
    info = engine.info
    header = gr.HTML(panels.header_html(info, engine.status), elem_id="header")
    status_line = panels.status_text(engine.status)
    # Always there, hidden by the page's CSS while empty: toggling `visible` from the timer
    # would make Gradio rebuild the component on every tick of every open page.
    status = gr.Markdown(status_line, elem_id="engine-status")
    with gr.Tabs(elem_id="tabs"):
        chat_tab = gr.Tab("Chat", id="chat", elem_id="tab-chat")
        with chat_tab, gr.Row(equal_height=False, elem_id="main"):
            with gr.Column(scale=3, min_width=340, elem_id="chat-column"):
                chat = _render_chat(engine)
                conversation = gr.State(Conversation())
                build_chat_evaluation(chat["chatbot"], conversation, store, files)
            with gr.Column(scale=1, min_width=300, elem_id="side"):
                side = _render_side(engine)
        build_side_by_side_tab({info.kind: engine}, store, files)
        build_batch_tab(engine, store, files)
        build_runs_tab(store, files, everyone_may_review=everyone_may_review)
        build_review_tab(store, engine, files, everyone_may_review=everyone_may_review)
    return ChatParts(header=header, status=status, **chat, **side, conversation=conversation,
                  session=gr.State(SessionSummary()), refusal=gr.State(Refusal()))


def _render_chat(engine: Engine) -> dict[str, Any]:
    info = engine.info
    chatbot = gr.Chatbot(
        elem_id="chatbot", height="calc(100vh - 320px)", min_height=320, show_label=False,
        editable="user", group_consecutive_messages=False,
        buttons=["copy", "copy_all"], placeholder=_placeholder(info.max_images, info.max_audios),
        examples=[example.card() for example in EXAMPLES],
    )
    textbox = gr.MultimodalTextbox(
        elem_id="mm", file_types=["image", "audio"], file_count="multiple",
        sources=["upload", "microphone"], show_label=False, autofocus=True,
        placeholder="Ask anything, attach or paste images and audio, or record…",
        # Both buttons exist; the page shows one (see `gradio_workarounds.answering_js`).
        submit_btn=True, stop_btn=True, max_plain_text_length=100_000,
    )
    # The message being sent: the browser moves it here from the input (see `chat_wiring`).
    sent = gr.MultimodalTextbox(visible=False, elem_id="mm-sent", file_types=["image", "audio"],
                                file_count="multiple", max_plain_text_length=100_000)
    send_id = gr.Textbox(visible=False, elem_id="send-id")
    cost = gr.Markdown(elem_id="cost", elem_classes=["p4-muted"])
    with gr.Accordion("Camera", open=False, elem_id="camera-panel"):
        # image_mode=None keeps the visitor's own upload (a conversion would make a new file).
        camera = gr.Image(sources=["webcam"], type="filepath", image_mode=None,
                          show_label=False, elem_id="camera", height=260)
        gr.Markdown("Take a photo and it is attached to your message.",
                    elem_classes=["p4-muted"])
    session_line = gr.Markdown(SessionSummary().text(), elem_id="session-summary",
                               elem_classes=["p4-muted"])
    return {"chatbot": chatbot, "textbox": textbox, "sent": sent, "send_id": send_id,
            "cost": cost, "camera": camera,
            "session_line": session_line}


PRESETS_NOTE = (
    f"**Defaults:** the system prompt above, greedy, {DEFAULT_MAX_TOKENS} new tokens. "
    f"**Greedy (model card):** as Microsoft's examples run the model: no system prompt, "
    f"greedy (temperature 0, top-p 1), up to {CARD_MAX_NEW_TOKENS:,} new tokens.")


def _render_side(engine: Engine) -> dict[str, Any]:
    info = engine.info
    default = GenerationSettings()
    with gr.Accordion("Generation settings", open=True, elem_id="settings"):
        system = gr.Textbox(default.system, label="System prompt", lines=2, max_lines=8,
                            elem_id="system-prompt")
        temperature = gr.Slider(*TEMPERATURE_RANGE, value=default.temperature, step=0.05,
                                label="Temperature", info="0 is greedy, as in Microsoft's examples",
                                elem_id="temperature")
        top_p = gr.Slider(*TOP_P_RANGE, value=default.top_p, step=0.05, label="Top-p",
                          elem_id="top-p")
        max_tokens = gr.Slider(16, max_new_tokens(engine), value=default.max_tokens, step=16,
                               label="Max new tokens", elem_id="max-tokens")
        seed = gr.Number(None, label="Seed", info="Empty for a random seed", precision=0,
                         minimum=0, elem_id="seed")
        with gr.Row():
            reset = gr.Button("Reset to defaults", size="sm", variant="secondary",
                              elem_id="reset")
            card_preset = gr.Button("Greedy (model card)", size="sm", variant="secondary",
                                    elem_id="card-preset")
        gr.Markdown(PRESETS_NOTE, elem_id="presets-note")
    with gr.Accordion("Engine", open=True, elem_id="engine-panel"):
        live = gr.Markdown(panels.live_markdown(None, None), elem_id="engine-live",
                           elem_classes=["p4-table"])
        plot = gr.LinePlot(rates_frame([]), x="seconds", y="tokens/s", height=180,
                           x_lim=[-PLOT_WINDOW_S, 0], y_lim=[0, None],
                           x_title="seconds (0 = now)", y_title="tokens/s", y_axis_format="~s",
                           label="Generated tokens per second", elem_id="throughput")
    with gr.Accordion("Engine settings", open=False, elem_id="engine-settings"):
        engine_settings = gr.Markdown(panels.engine_settings_markdown(info),
                                      elem_classes=["p4-table"])
    stored = gr.BrowserState(default.stored(), storage_key=SETTINGS_KEY, secret=SETTINGS_SECRET)
    return {"settings": [system, temperature, top_p, max_tokens, seed], "reset": reset,
            "card_preset": card_preset,
            "stored": stored, "live": live, "plot": plot, "engine_settings": engine_settings}


def _placeholder(max_images: int, max_audios: int) -> str:
    return ("### Ask Phi-4-multimodal\nType a question, attach up to "
            f"{max_images} image{'s' if max_images != 1 else ''} and {max_audios} audio "
            f"clip{'s' if max_audios != 1 else ''}, record from your microphone, or start "
            "from an example below.")
