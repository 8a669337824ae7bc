"""The page: layout and event wiring only. It reaches the engine through `phi4ui.service`
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

from phi4ui import history as chat_history
from phi4ui import panels, preview, recording, service, ui_eval
from phi4ui.chat import ChatRequest
from phi4ui.engines.base import Engine
from phi4ui.errors import Phi4UIError
from phi4ui.examples import ASSETS, EXAMPLES, message_for
from phi4ui.history import History
from phi4ui.preferences import TEMPERATURE_RANGE, TOP_P_RANGE, GenerationSettings
from phi4ui.session import SessionSummary
from phi4ui.stats import EngineSnapshot, RequestStats, StatsRecorder
from phi4ui.store import Store
from phi4ui.throughput import ThroughputHistory

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
    stored: gr.BrowserState
    live: gr.Markdown
    plot: gr.LinePlot
    engine_settings: gr.Markdown
    busy: gr.State
    session: gr.State
    shown: gr.State  # the chat as last completed; edits need the attachments the browser drops
    stopped: gr.State  # a StopSignal, new for each accepted message
    refusal: gr.State  # a Refusal: why the last step was refused, for the toast


def build_page(engine: Engine, store: Store | None = None) -> gr.Blocks:
    with gr.Blocks(title="phi4ui · Phi-4-multimodal", analytics_enabled=False) as page:
        parts = _render(engine, store)
        handlers = _Handlers(engine, store)
        _wire_chat(page, parts, handlers)
        _wire_panels(page, parts, handlers)
    return page


# ---------------------------------------------------------------- layout

def _render(engine: Engine, store: Store | None) -> _Parts:
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
                ui_eval.build_chat_evaluation(chat["chatbot"], store)
            with gr.Column(scale=1, min_width=300, elem_id="side"):
                side = _render_side(engine)
        ui_eval.build_side_by_side_tab({info.kind: engine}, store)
        ui_eval.build_batch_tab(engine, store)
        ui_eval.build_review_tab(store, engine)
    return _Parts(header=header, status=status, **chat, **side,
                  busy=gr.State(False), session=gr.State(SessionSummary()),
                  shown=gr.State([]), stopped=gr.State(StopSignal()), refusal=gr.State(Refusal()))


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
        camera = gr.Image(sources=["webcam"], type="filepath", show_label=False,
                          elem_id="camera", height=260)
        gr.Markdown("Take a photo and it is attached to your message.",
                    elem_classes=["p4-muted"])
    session_line = gr.Markdown(SessionSummary().text(), elem_id="session-summary",
                               elem_classes=["p4-muted"])
    return {"chatbot": chatbot, "textbox": textbox, "cost": cost, "camera": camera,
            "session_line": session_line}


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
        reset = gr.Button("Reset to defaults", size="sm", variant="secondary", elem_id="reset")
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
    # The steps that start an answer, and undo, check first and may refuse. They are not
    # queued: a queued event costs a join, an SSE stream and the queue's bookkeeping, and the
    # time to first token passes through them. Gradio shows no toast for an event that is not
    # queued, so a refusal leaves its reason in `refusal` and a queued step shows it. (Gradio
    # also veils a failed step's outputs, the chat and the input, with "Error": style.css
    # hides that veil.)
    accepted = [p.chatbot, p.busy, p.stopped]
    starts = [
        p.textbox.submit(h.accept, [p.textbox, p.chatbot, p.busy, p.settings[0], p.refusal],
                         [*accepted, p.textbox], queue=False, **hidden),
        p.chatbot.retry(h.accept_retry, [p.chatbot, p.busy, p.refusal], accepted, queue=False,
                        **hidden),
        p.chatbot.edit(h.accept_edit, [p.shown, p.busy, p.refusal], accepted, queue=False,
                       **hidden),
    ]
    undo = p.chatbot.undo(h.undo, [p.chatbot, p.busy, p.refusal],
                          [p.chatbot, p.textbox, p.shown], queue=False, **hidden)
    for refusable in [*starts, undo]:
        refusable.failure(h.tell_refusal, [p.refusal], None, concurrency_limit=None, **hidden)
    answers = []
    for start in starts:
        start.success(None, None, None, js=ANSWERING.format(on="true"), **hidden)
        answers.append(
            start.success(h.answer, [p.chatbot, p.session, *p.settings, p.stopped],
                          [p.chatbot, p.session], concurrency_limit=None, **hidden))
    for answer in answers:
        answer.then(h.finish, [p.chatbot, p.session, p.stopped], [p.chatbot, p.busy, p.shown,
                                                       p.session_line], queue=False,
                    **hidden).then(None, None, None, js=ANSWERING.format(on="false"), **hidden)
    # Cancelling ends a streaming answer the browser knows of; the signal also stops one that
    # has not begun, or whose start the browser has not heard of yet.
    p.textbox.stop(h.request_stop, [p.stopped], None, cancels=answers, queue=False, **hidden)
    p.chatbot.clear(h.clear, [p.stopped], [p.shown], cancels=answers, queue=False, **hidden)
    preview_args = ([p.textbox, p.chatbot, p.settings[0]], [p.cost])
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
    panel_outputs = [p.header, p.status, p.live, p.plot, p.engine_settings]
    gr.Timer(TICK_S).tick(h.refresh, None, panel_outputs, queue=False, **hidden)
    page.load(h.refresh, None, panel_outputs, queue=False, **hidden)


class _Handlers:
    """What each event does; one instance per page, bound to the engine."""

    def __init__(self, engine: Engine, store: Store | None) -> None:
        self.engine = engine
        self.store = store
        self.throughput = ThroughputHistory(window_s=PLOT_WINDOW_S)
        self._panels: tuple[float, tuple[Any, ...]] | None = None  # (when, outputs)
        self._panels_lock = asyncio.Lock()

    # ------------------------------------------------------------ starting an answer

    # The steps are async and return plain values: a sync handler costs a thread hop, and a
    # component returned as an update makes Gradio rebuild it and its JSON schema.

    async def accept(self, message: dict[str, Any] | None, shown: History | None, busy: bool,
                     system: str, refusal: Refusal) -> tuple[History, bool, StopSignal, None]:
        """Checks the new message against the engine before anything changes on the page;
        returns the chat to show while the answer comes."""
        refusal.unless_busy(busy)
        history = list(shown or [])
        await self._check(history, message or {}, system, refusal)
        return ([*history, *chat_history.user_messages(message or {})], True, StopSignal(),
                None)  # and an empty input

    async def accept_retry(self, shown: History | None, busy: bool, refusal: Refusal
                           ) -> tuple[History, bool, StopSignal]:
        refusal.unless_busy(busy)
        return refusal.unless_fails(chat_history.for_retry, list(shown or [])), True, StopSignal()

    async def accept_edit(self, before: History | None, busy: bool, refusal: Refusal,
                          edit: gr.EditData) -> tuple[History, bool, StopSignal]:
        refusal.unless_busy(busy)
        index = edit.index[0] if isinstance(edit.index, list | tuple) else edit.index
        return refusal.unless_fails(chat_history.for_edit, list(before or []), int(index),
                                    str(edit.value or "")), True, StopSignal()

    async def _check(self, history: History, message: dict[str, Any], system: str,
                     refusal: Refusal) -> None:
        try:
            await service.plan(self.engine, history, message, system or "",
                               GenerationSettings().sampling())
        except Phi4UIError as error:
            refusal.refuse(str(error))

    async def tell_refusal(self, refusal: Refusal) -> None:
        """Queued, so that its toast shows: why the step before was refused."""
        if refusal.reason:
            gr.Warning(escape(refusal.reason))
            refusal.reason = ""

    # ------------------------------------------------------------ streaming it

    async def answer(self, shown: History, session: SessionSummary, system: str,
                     temperature: float, top_p: float, max_tokens: float, seed: float | None,
                     stopped: StopSignal) -> AsyncIterator[tuple[Any, Any]]:
        """Streams the answer to the newest user message in `shown`. Each update carries
        only the chat (and, at the end, the session): `gr.skip()` for another component
        would make Gradio rebuild that component on every update."""
        if stopped.requested:  # Stop came before the answer began; `finish` says so
            return
        settings = GenerationSettings.checked(system, temperature, top_p, max_tokens, seed,
                                              _max_new_tokens(self.engine))
        history = list(shown)
        latest = history  # what the page shows now, partial answer included
        try:
            request = await service.plan(self.engine, history, None, settings.system,
                                         settings.sampling())
            stopped.started(request)
            updates = service.answer(self.engine, request, progress=stopped.progress)
            async with contextlib.aclosing(updates):
                async for update in updates:
                    if stopped.requested:
                        return  # closing the updates aborts the engine request
                    latest = [*history, {"role": "assistant", "content": update.text}]
                    if update.stats is None:
                        yield latest, gr.skip()  # a state: skipping it costs nothing
                        continue
                    session = session.add(update.stats)
                    answer = await self._record(history, update)
                    latest = [*history, answer,
                              *chat_history.answer_annotations(update.stats, update.notes)]
                    yield latest, session
        except Phi4UIError as error:
            yield _interrupted(latest, str(error)), gr.skip()
        except Exception:
            log.exception("streaming an answer failed")
            yield _interrupted(latest, SOMETHING_BROKE), gr.skip()

    async def _record(self, history: History, update: service.AnswerUpdate) -> dict[str, Any]:
        """The finished answer's message, marked with its record id when it was recorded."""
        message = {"role": "assistant", "content": update.text}
        if self.store is None:
            return message
        try:
            recorded = await recording.record_update(
                self.store, self.engine.info, update, parent_id=recording.last_answer_id(history))
        except Phi4UIError as error:
            gr.Warning(escape(str(error)))
            return message
        for note in recorded.notes:
            gr.Info(escape(note))
        return recording.mark(message, recorded.answer_id)

    async def finish(self, shown: History | None, session: SessionSummary,
                     stopped: StopSignal) -> tuple[History, bool, History, str]:
        """Runs after every answer, finished or stopped."""
        final = chat_history.with_stop_noted(shown or [], self._stopped_stats(stopped))
        return final, False, final, session.text()

    def _stopped_stats(self, stopped: StopSignal) -> RequestStats | None:
        if stopped.request is None or stopped.progress is None:  # it never began
            return None
        return service.stopped_stats(self.engine, stopped.request, stopped.progress)

    # ------------------------------------------------------------ other chat actions

    async def undo(self, shown: History | None, busy: bool, refusal: Refusal
                   ) -> tuple[Any, Any, History]:
        refusal.unless_busy(busy)
        history, message = refusal.unless_fails(chat_history.undo, list(shown or []))
        return history, message, history

    async def request_stop(self, stopped: StopSignal) -> None:
        stopped.requested = True

    async def clear(self, stopped: StopSignal) -> History:
        stopped.requested = True
        return []

    async def preview(self, message: dict[str, Any] | None, shown: History | None,
                      system: str) -> str:
        try:
            return await preview.describe(self.engine, list(shown or []), message, system or "")
        except Exception:
            log.exception("estimating the prompt size failed")
            return ""

    def use_example(self, selected: gr.SelectData) -> Any:
        # By index into our own list: the browser's copy of the example is not trusted.
        message = message_for(selected.index)
        return message if message else gr.skip()

    def attach_photo(self, photo: str | None, message: dict[str, Any] | None
                     ) -> tuple[Any, Any]:
        if not photo:
            return gr.skip(), gr.skip()
        message = message or {}
        files = [*chat_history.files_of(message), photo]
        return {"text": message.get("text") or "", "files": files}, None

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

    def unless_busy(self, busy: bool) -> None:
        if busy:
            self.refuse(BUSY)

    def unless_fails(self, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except Phi4UIError as error:
            self.refuse(str(error))


class StopSignal:
    """Set by Stop, read by the streaming answer between updates. Gradio hands a session's
    state to handlers as the object itself, so the answer sees a Stop pressed after it began.
    It also keeps the request being streamed and the app's count of its tokens, from which
    `finish` tells how far a stopped answer got."""

    def __init__(self) -> None:
        self.requested = False
        self.request: ChatRequest | None = None
        self.progress: StatsRecorder | None = None

    def started(self, request: ChatRequest) -> None:
        self.request, self.progress = request, StatsRecorder()


def _interrupted(history: History, message: str) -> History:
    gr.Warning(escape(message))
    return [*history, chat_history.annotation(chat_history.INTERRUPTED_TITLE, message)]


def _settings_values(settings: GenerationSettings) -> list[Any]:
    return [settings.system, settings.temperature, settings.top_p, settings.max_tokens,
            settings.seed]
