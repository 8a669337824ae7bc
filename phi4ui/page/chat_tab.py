"""The page: layout and event wiring only. It reaches the engine through `phi4ui.core.answer_stream`
and knows nothing of vLLM, media decoding or prompts.

Sending, retrying and editing share one chain, as in Gradio's ChatInterface: a
step checks the message against the engine and shows it at once (a refusal shows
a warning, ends the chain and leaves the chat and the input as they were), a
queued step streams the answer (Stop and Clear cancel it, and cancelling aborts
the engine request), and a last step runs in every case to note a stop, with how
far the answer got, and give the send button back. The input stays usable while
an answer streams; only sending waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import escape
from typing import Any, NoReturn

import gradio as gr
import pandas as pd

from phi4ui.core import answer_stream, cost_preview
from phi4ui.core import history as chat_history
from phi4ui.core.conversation import (
    Conversation,
    StopSignal,
    checked_files,
    checked_message,
    checked_text,
    usable_files,
)
from phi4ui.core.engine import Engine
from phi4ui.core.generation_settings import (
    CARD_MAX_NEW_TOKENS,
    DEFAULT_MAX_TOKENS,
    MIN_NEW_TOKENS,
    TEMPERATURE_RANGE,
    TOP_P_RANGE,
    GenerationSettings,
)
from phi4ui.core.history import History
from phi4ui.core.session_summary import SessionSummary
from phi4ui.core.stats import EngineSnapshot, RequestStats
from phi4ui.core.throughput import ThroughputHistory
from phi4ui.errors import Phi4UIError
from phi4ui.evaluation import recording
from phi4ui.evaluation.store import Store
from phi4ui.page import eval_tabs, panels
from phi4ui.page.examples import ASSETS, EXAMPLES, message_for
from phi4ui.page.files import PageFiles, login_of
from phi4ui.page.safe_markdown import WORD_JOINER, safe_markdown

log = logging.getLogger(__name__)
CSS_PATH = ASSETS / "style.css"
TICK_S = 2.0
PLOT_WINDOW_S = 300.0
# Settings are not confidential: a fixed key keeps them across app restarts.
SETTINGS_KEY = "phi4ui-generation-settings"
SETTINGS_SECRET = "phi4ui-settings-not-secret"
BUSY = "An answer is still being written. Wait for it, or press Stop first."
# Switches the input's Send button for its Stop button while an answer is written, in the
# browser: no round trip, and no component update for Gradio to rebuild.
ANSWERING = "() => {{ document.body.classList.toggle('p4-answering', {on}); }}"
SOMETHING_BROKE = ("Something went wrong on our side and the answer stopped. Your conversation "
                   "is kept; press Retry to try again.")


def theme() -> gr.themes.Base:
    """Soft, with the visitor's system fonts: the page loads nothing from other hosts."""
    return gr.themes.Soft(
        primary_hue="indigo", secondary_hue="sky", neutral_hue="slate",
        font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )


@dataclass
class _Parts:
    """The components the events refer to."""

    header: gr.HTML
    status: gr.Markdown
    chatbot: gr.Chatbot
    textbox: gr.MultimodalTextbox
    cost: gr.Markdown
    session_line: gr.Markdown
    camera: gr.Image
    settings: list[Any]  # system, temperature, top_p, max_tokens, seed
    reset: gr.Button
    card_preset: gr.Button
    stored: gr.BrowserState
    live: gr.Markdown
    plot: gr.LinePlot
    engine_settings: gr.Markdown
    conversation: gr.State  # a Conversation: the chat as the server keeps it
    session: gr.State
    refusal: gr.State  # a Refusal: why the last step was refused, for the toast


def build_page(engine: Engine, store: Store | None, files: PageFiles, *,
               everyone_may_review: bool = True) -> gr.Blocks:
    """The page. What the browser sends back of the chat is never trusted: each session's
    conversation lives on the server, and only files `files` lets its visitor use are read.
    `everyone_may_review`: whether every visitor may see every recorded answer."""
    files.make_public(path for example in EXAMPLES for path in example.paths())
    with gr.Blocks(title="phi4ui · Phi-4-multimodal", analytics_enabled=False) as page:
        parts = _render(engine, store, files, everyone_may_review)
        handlers = _Handlers(engine, store, files)
        _wire_chat(page, parts, handlers)
        _wire_panels(page, parts, handlers)
    return page


# ---------------------------------------------------------------- layout

def _render(engine: Engine, store: Store | None, files: PageFiles,
            everyone_may_review: bool) -> _Parts:
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
                eval_tabs.build_chat_evaluation(chat["chatbot"], conversation, store, files)
            with gr.Column(scale=1, min_width=300, elem_id="side"):
                side = _render_side(engine)
        eval_tabs.build_side_by_side_tab({info.kind: engine}, store, files)
        eval_tabs.build_batch_tab(engine, store, files)
        eval_tabs.build_review_tab(store, engine, files, everyone_may_review=everyone_may_review)
    return _Parts(header=header, status=status, **chat, **side, conversation=conversation,
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
        # Both buttons exist; the page's `p4-answering` class shows one (see ANSWERING).
        submit_btn=True, stop_btn=True, max_plain_text_length=100_000,
    )
    cost = gr.Markdown(elem_id="cost", elem_classes=["p4-muted"])
    with gr.Accordion("Camera", open=False, elem_id="camera-panel"):
        # image_mode=None keeps the visitor's own upload (a conversion would make a new file).
        camera = gr.Image(sources=["webcam"], type="filepath", image_mode=None,
                          show_label=False, elem_id="camera", height=260)
        gr.Markdown("Take a photo and it is attached to your message.",
                    elem_classes=["p4-muted"])
    session_line = gr.Markdown(SessionSummary().text(), elem_id="session-summary",
                               elem_classes=["p4-muted"])
    return {"chatbot": chatbot, "textbox": textbox, "cost": cost, "camera": camera,
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
        max_tokens = gr.Slider(16, _max_new_tokens(engine), value=default.max_tokens, step=16,
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
        plot = gr.LinePlot(_rates_frame([]), x="seconds", y="tokens/s", height=180,
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


def _max_new_tokens(engine: Engine) -> int:
    return engine.info.max_model_len or 16384


def _rates_frame(points: list[tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame(points, columns=["seconds", "tokens/s"], dtype=float)


# ---------------------------------------------------------------- events

def _wire_chat(page: gr.Blocks, p: _Parts, h: _Handlers) -> None:
    hidden: dict[str, Any] = {"show_progress": "hidden", "api_visibility": "undocumented"}
    # The chat shown in the browser is an output only: every step reads the server's copy
    # in `conversation`. The steps that start an answer, and undo, check first and may
    # refuse. They are not queued: a queued event costs a join, an SSE stream and the
    # queue's bookkeeping, and the time to first token passes through them. Gradio shows no
    # toast for an event that is not queued, so a refusal leaves its reason in `refusal` and
    # a queued step shows it. (Gradio also veils a failed step's outputs, the chat and the
    # input, with "Error": style.css hides that veil.)
    c, r = p.conversation, p.refusal
    starts = [
        p.textbox.submit(h.accept, [p.textbox, c, p.settings[0], r], [p.chatbot, p.textbox],
                         queue=False, **hidden),
        p.chatbot.retry(h.accept_retry, [c, r], [p.chatbot], queue=False, **hidden),
        p.chatbot.edit(h.accept_edit, [c, r], [p.chatbot], queue=False, **hidden),
    ]
    undo = p.chatbot.undo(h.undo, [c, r], [p.chatbot, p.textbox], queue=False, **hidden)
    for refusable in [*starts, undo]:
        refusable.failure(h.tell_refusal, [r], None, concurrency_limit=None, **hidden)
    answers = []
    for start in starts:
        start.success(None, None, None, js=ANSWERING.format(on="true"), **hidden)
        answers.append(start.success(h.answer, [c, p.session, *p.settings],
                                     [p.chatbot, p.session], concurrency_limit=None, **hidden))
    for answer in answers:
        answer.then(h.finish, [c, p.session], [p.chatbot, p.session_line], queue=False,
                    **hidden).then(None, None, None, js=ANSWERING.format(on="false"), **hidden)
    # Cancelling ends a streaming answer the browser knows of; the signal also stops one that
    # has not begun, or whose start the browser has not heard of yet.
    p.textbox.stop(h.request_stop, [c], None, cancels=answers, queue=False, **hidden)
    p.chatbot.clear(h.clear, [c], None, cancels=answers, queue=False, **hidden)
    preview_args = ([p.textbox, c, p.settings[0]], [p.cost])
    gr.on([p.textbox.change, p.settings[0].change], h.preview, *preview_args, queue=False,
          trigger_mode="always_last", **hidden)
    p.chatbot.example_select(h.use_example, None, [p.textbox], queue=False, **hidden)
    # A value set by this handler does not fire the textbox's change event: update the cost here.
    p.camera.change(h.attach_photo, [p.camera, p.textbox], [p.textbox, p.camera], queue=False,
                    **hidden).then(h.preview, *preview_args, queue=False, **hidden)


def _wire_panels(page: gr.Blocks, p: _Parts, h: _Handlers) -> None:
    hidden: dict[str, Any] = {"show_progress": "hidden", "api_visibility": "undocumented"}
    page.load(h.load_settings, [p.stored], p.settings, queue=False, **hidden)
    gr.on([s.change for s in p.settings], h.save_settings, p.settings, [p.stored], queue=False,
          trigger_mode="always_last", **hidden)
    p.reset.click(h.default_settings, None, p.settings, queue=False, **hidden)
    p.card_preset.click(h.card_settings, None, p.settings, queue=False, **hidden)
    panel_outputs = [p.header, p.status, p.live, p.plot, p.engine_settings]
    gr.Timer(TICK_S).tick(h.refresh, None, panel_outputs, queue=False, **hidden)
    page.load(h.refresh, None, panel_outputs, queue=False, **hidden)


class _Handlers:
    """What each event does; one instance per page, bound to the engine."""

    def __init__(self, engine: Engine, store: Store | None, files: PageFiles) -> None:
        self.engine = engine
        self.store = store
        self.files = files
        self.throughput = ThroughputHistory(window_s=PLOT_WINDOW_S)
        self._panels: tuple[float, tuple[Any, ...]] | None = None  # (when, outputs)
        self._panels_lock = asyncio.Lock()

    # ------------------------------------------------------------ starting an answer

    # The steps are async and return plain values: a sync handler costs a thread hop, and a
    # component returned as an update makes Gradio rebuild it and its JSON schema.

    async def accept(self, message: Any, conversation: Conversation, system: Any,
                     refusal: Refusal, request: gr.Request) -> tuple[History, None]:
        """Checks the new message against the engine before anything changes on the page;
        returns the chat to show while the answer comes, and an empty input."""
        refusal.unless_busy(conversation)
        checked = refusal.unless_fails(checked_message, message, self.files.checker(request))
        history = conversation.messages
        system = GenerationSettings.checked(system, None, None, None, None, 0).system
        await self._check(history, checked, system, refusal)
        conversation.begin([*history, *chat_history.user_messages(checked)])
        return _shown(conversation.messages), None

    async def accept_retry(self, conversation: Conversation, refusal: Refusal) -> History:
        refusal.unless_busy(conversation)
        conversation.begin(refusal.unless_fails(chat_history.for_retry, conversation.messages))
        return _shown(conversation.messages)

    async def accept_edit(self, conversation: Conversation, refusal: Refusal,
                          edit: gr.EditData) -> History:
        refusal.unless_busy(conversation)
        index = edit.index[0] if isinstance(edit.index, list | tuple) else edit.index
        if not isinstance(index, int) or isinstance(index, bool):
            refusal.refuse("Only your own messages can be edited.")
        # The page shows text with invisible word joiners (see `safe_markdown`); not typed.
        text = refusal.unless_fails(checked_text, edit.value).replace(WORD_JOINER, "")
        conversation.begin(refusal.unless_fails(chat_history.for_edit, conversation.messages,
                                                index, text))
        return _shown(conversation.messages)

    async def _check(self, history: History, message: dict[str, Any], system: str,
                     refusal: Refusal) -> None:
        try:
            await answer_stream.plan(self.engine, history, message, system,
                               GenerationSettings().sampling())
        except Phi4UIError as error:
            refusal.refuse(str(error))

    async def tell_refusal(self, refusal: Refusal) -> None:
        """Queued, so that its toast shows: why the step before was refused."""
        if refusal.reason:
            gr.Warning(escape(refusal.reason))
            refusal.reason = ""

    # ------------------------------------------------------------ streaming it

    async def answer(self, conversation: Conversation, session: SessionSummary, system: str,
                     temperature: float, top_p: float, max_tokens: float, seed: float | None,
                     request: gr.Request) -> AsyncIterator[tuple[Any, Any]]:
        """Streams the answer to the newest user message of the conversation. Each update
        carries only the chat (and, at the end, the session): `gr.skip()` for another
        component would make Gradio rebuild that component on every update."""
        stopped = conversation.stop
        if stopped.requested or not conversation.busy:  # Stop came first; `finish` says so
            return
        conversation.answering = True
        settings = GenerationSettings.checked(system, temperature, top_p, max_tokens, seed,
                                              _max_new_tokens(self.engine))
        history = list(conversation.messages)
        try:
            chat_request = await answer_stream.plan(self.engine, history, None, settings.system,
                                          settings.sampling())
            stopped.started(chat_request)
            updates = answer_stream.answer(self.engine, chat_request, progress=stopped.progress)
            async with contextlib.aclosing(updates):
                async for update in updates:
                    if stopped.requested:
                        return  # closing the updates aborts the engine request
                    conversation.messages = [*history, {"role": "assistant",
                                                        "content": update.text}]
                    if update.stats is None:
                        yield _shown(conversation.messages), gr.skip()  # skipping a state is free
                        continue
                    session = session.add(update.stats)
                    answer = await self._record(history, update, request)
                    conversation.messages = [
                        *history, answer,
                        *chat_history.answer_annotations(update.stats, update.notes)]
                    yield _shown(conversation.messages), session
        except Phi4UIError as error:
            conversation.messages = _interrupted(conversation.messages, str(error))
            yield _shown(conversation.messages), gr.skip()
        except Exception:
            log.exception("streaming an answer failed")
            conversation.messages = _interrupted(conversation.messages, SOMETHING_BROKE)
            yield _shown(conversation.messages), gr.skip()
        finally:
            # Also when the page's connection dropped and no finishing step will come.
            conversation.end(conversation.messages)

    async def _record(self, history: History, update: answer_stream.AnswerUpdate,
                      request: gr.Request) -> dict[str, Any]:
        """The finished answer's message, marked with its record id when it was recorded."""
        message = {"role": "assistant", "content": update.text}
        if self.store is None:
            return message
        try:
            recorded = await recording.record_update(
                self.store, self.engine.info, update,
                parent_id=chat_history.last_answer_id(history), user=login_of(request))
        except Phi4UIError as error:
            gr.Warning(escape(str(error)))
            return message
        for note in recorded.notes:
            gr.Info(escape(note))
        return chat_history.mark(message, recorded.answer_id)

    async def finish(self, conversation: Conversation, session: SessionSummary
                     ) -> tuple[History, str]:
        """Runs after every answer, finished or stopped."""
        if conversation.busy and not conversation.answering and not conversation.stop.requested:
            # The answer step was refused before it ran: Gradio checks the settings first.
            final = _interrupted(conversation.messages, self._not_started())
        else:
            final = chat_history.with_stop_noted(conversation.messages,
                                                 self._stopped_stats(conversation.stop))
        conversation.end(final)
        return _shown(final), session.text()

    def _not_started(self) -> str:
        low, high = TEMPERATURE_RANGE
        return (f"The answer could not start: the settings sent are not valid (temperature "
                f"{low:g} to {high:g}, top-p {TOP_P_RANGE[0]:g} to {TOP_P_RANGE[1]:g}, max new "
                f"tokens {MIN_NEW_TOKENS} to {_max_new_tokens(self.engine):,}, seed a whole "
                "number from 0). Reset the settings and press Retry.")

    def _stopped_stats(self, stopped: StopSignal) -> RequestStats | None:
        if stopped.request is None or stopped.progress is None:  # it never began
            return None
        return answer_stream.stopped_stats(self.engine, stopped.request, stopped.progress)

    # ------------------------------------------------------------ other chat actions

    async def undo(self, conversation: Conversation, refusal: Refusal) -> tuple[Any, Any]:
        refusal.unless_busy(conversation)
        history, message = refusal.unless_fails(chat_history.undo, conversation.messages)
        conversation.end(history)
        return _shown(history), message

    async def request_stop(self, conversation: Conversation) -> None:
        conversation.stop.requested = True

    async def clear(self, conversation: Conversation) -> None:
        conversation.stop.requested = True
        conversation.end([])

    async def preview(self, message: Any, conversation: Conversation, system: Any,
                      request: gr.Request) -> str:
        try:
            checked = checked_message(message, self.files.checker(request))
            system = GenerationSettings.checked(system, None, None, None, None, 0).system
            return await cost_preview.describe(self.engine, conversation.messages, checked, system)
        except Phi4UIError as error:
            return escape(str(error))
        except Exception:
            log.exception("estimating the prompt size failed")
            return ""

    def use_example(self, selected: gr.SelectData) -> Any:
        # By index into our own list: the browser's copy of the example is not trusted.
        message = message_for(selected.index)
        return message if message else gr.skip()

    def attach_photo(self, photo: Any, message: Any, request: gr.Request) -> tuple[Any, Any]:
        if not photo or not isinstance(photo, str):
            return gr.skip(), gr.skip()
        may_use = self.files.checker(request)
        try:
            checked_files([photo], may_use)
        except Phi4UIError as error:
            gr.Warning(escape(str(error)))
            return gr.skip(), None
        message = message if isinstance(message, dict) else {}
        files = [*usable_files(chat_history.files_of(message), may_use), photo]
        text = message.get("text")
        return {"text": text if isinstance(text, str) else "", "files": files}, None

    # ------------------------------------------------------------ settings

    def load_settings(self, stored: Any) -> list[Any]:
        settings = GenerationSettings.from_stored(stored, _max_new_tokens(self.engine))
        return _settings_values(settings)

    def save_settings(self, system: str, temperature: float, top_p: float, max_tokens: float,
                      seed: float | None) -> dict[str, Any]:
        return GenerationSettings.checked(system, temperature, top_p, max_tokens, seed,
                                          _max_new_tokens(self.engine)).stored()

    def default_settings(self) -> list[Any]:
        return _settings_values(GenerationSettings())

    def card_settings(self) -> list[Any]:
        return _settings_values(GenerationSettings.card_greedy(_max_new_tokens(self.engine)))

    # ------------------------------------------------------------ engine panel

    async def refresh(self) -> tuple[Any, ...]:
        """The engine panel. Every open page asks every TICK_S; they all see the same engine,
        so one reading serves them all for half a tick."""
        async with self._panels_lock:
            now = time.monotonic()
            if self._panels is None or now - self._panels[0] >= TICK_S / 2:
                self._panels = (now, await self._panel_outputs())
            return self._panels[1]

    async def _panel_outputs(self) -> tuple[Any, ...]:
        engine = self.engine
        info, status = engine.info, engine.status
        snapshot = await self._snapshot() if status.state == "ready" else None
        if snapshot is not None:
            self.throughput.observe(snapshot.generation_tokens_total, snapshot.taken_at)
        return (panels.header_html(info, status), panels.status_text(status),
                panels.live_markdown(snapshot, self.throughput.latest() if snapshot else None),
                _rates_frame(self.throughput.rates(time.time())),
                panels.engine_settings_markdown(info))

    async def _snapshot(self) -> EngineSnapshot | None:
        try:
            return await self.engine.snapshot()
        except Exception:  # the panel says "n/a"; the next tick tries again
            log.debug("engine snapshot failed", exc_info=True)
            return None


class Refusal:
    """Why the last step was refused. A step that refuses ends its event chain with an
    error Gradio does not show (the step is not queued); `tell_refusal` then shows this."""

    def __init__(self) -> None:
        self.reason = ""

    def refuse(self, reason: str) -> NoReturn:
        self.reason = reason
        raise gr.Error(escape(reason), visible=False, print_exception=False)

    def unless_busy(self, conversation: Conversation) -> None:
        if conversation.is_busy():
            self.refuse(BUSY)

    def unless_fails(self, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except Phi4UIError as error:
            self.refuse(str(error))


def _shown(messages: History) -> History:
    """The chat as the browser gets it: a copy (the server's stays its own) whose text
    cannot make the browser load anything from another host."""
    return [{**message, "content": safe_markdown(message["content"])}
            if isinstance(message.get("content"), str) else dict(message)
            for message in messages]


def _interrupted(history: History, message: str) -> History:
    gr.Warning(escape(message))
    return [*history, chat_history.annotation(chat_history.INTERRUPTED_TITLE, message)]


def _settings_values(settings: GenerationSettings) -> list[Any]:
    return [settings.system, settings.temperature, settings.top_p, settings.max_tokens,
            settings.seed]
