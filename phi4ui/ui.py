"""The page: layout and event wiring only. It speaks to the engine through
`phi4ui.service` and knows nothing of vLLM, media decoding or prompts."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gradio as gr

from phi4ui import service
from phi4ui.chat import Sampling
from phi4ui.engines.base import Engine, EngineInfo
from phi4ui.errors import BadInput, EngineUnavailable, Phi4UIError
from phi4ui.stats import RequestStats, snapshot_rows

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_SYSTEM = "You are a helpful assistant."
RANDOM_BANNER = ("⚠️ **Random weights.** This demo runs a tiny random-weight Phi-4-multimodal "
                 "(no GPU or model weights here). Answers are noise; timings and statistics "
                 "are real.")
SOMETHING_BROKE = ("Something went wrong on our side and the answer stopped. Your conversation "
                   "is kept; press Enter to try again.")

History = list[dict[str, Any]]


def build_page(engine: Engine) -> gr.Blocks:
    info = engine.info
    with gr.Blocks(title="phi4ui · Phi-4-multimodal", analytics_enabled=False) as page:
        header = gr.Markdown(_header(info), elem_id="header")
        banner = gr.Markdown(RANDOM_BANNER, visible=info.random_weights, elem_id="random-banner")
        status = gr.Markdown(_status_text(engine), elem_id="engine-status")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=320):
                chatbot = gr.Chatbot(elem_id="chatbot", height=560, show_label=False,
                                     buttons=["copy"], placeholder="Ask about an image, "
                                     "a recording, or anything else.")
                textbox = gr.MultimodalTextbox(
                    elem_id="mm", file_types=["image", "audio"], file_count="multiple",
                    sources=["upload", "microphone"], show_label=False, autofocus=True,
                    placeholder="Type a message, attach images or audio, or record…",
                )
            with gr.Column(scale=1, min_width=260):
                with gr.Accordion("Generation settings", open=False):
                    system = gr.Textbox(DEFAULT_SYSTEM, label="System prompt", lines=2)
                    temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.05,
                                            label="Temperature (0 = greedy)")
                    top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p")
                    max_tokens = gr.Slider(16, 4096, value=512, step=16, label="Max new tokens")
                    seed = gr.Number(value=None, label="Seed (empty = random)", precision=0)
                engine_panel = gr.Markdown(elem_id="engine-panel")

        inputs = [textbox, chatbot, system, temperature, top_p, max_tokens, seed]
        submit = textbox.submit(_chat_handler(engine), inputs, [chatbot, textbox],
                                concurrency_limit=None, show_progress="hidden")
        textbox.stop(None, None, None, cancels=[submit])

        async def refresh() -> tuple[Any, Any, Any, Any]:
            fresh = engine.info
            return (_header(fresh), gr.update(visible=fresh.random_weights),
                    _status_text(engine), await _engine_panel(engine))

        timer = gr.Timer(2.0)
        timer.tick(refresh, None, [header, banner, status, engine_panel],
                   concurrency_limit=None, show_progress="hidden", queue=False)
        page.load(refresh, None, [header, banner, status, engine_panel], queue=False)
    return page


def _chat_handler(engine: Engine) -> Any:
    async def on_submit(message: dict[str, Any], history: History | None, system: str,
                        temperature: float, top_p: float, max_tokens: float,
                        seed: float | None) -> AsyncIterator[tuple[Any, Any]]:
        history = list(history or [])
        sampling = Sampling(temperature=float(temperature), top_p=float(top_p),
                            max_tokens=int(max_tokens),
                            seed=None if seed in (None, "") else int(seed))
        try:
            request = await service.plan(engine, history, message, system or "", sampling)
        except Phi4UIError as error:
            gr.Warning(str(error))  # the input stays as it was
            yield gr.skip(), gr.skip()
            return
        except Exception:
            log.exception("planning a request failed")
            gr.Warning(SOMETHING_BROKE)
            yield gr.skip(), gr.skip()
            return
        history += _user_messages(message)
        yield history, gr.MultimodalTextbox(value=None, interactive=False)
        async for shown in _stream_answer(engine, request, history):
            yield shown, gr.skip()
        yield gr.skip(), gr.MultimodalTextbox(interactive=True)

    return on_submit


async def _stream_answer(engine: Engine, request: Any, history: History
                         ) -> AsyncIterator[History]:
    answer: dict[str, Any] = {"role": "assistant", "content": ""}
    history = [*history, answer]
    try:
        async for update in service.answer(engine, request):
            answer["content"] = update.text
            if update.stats is not None:
                history += _annotations(update.stats, update.notes)
            yield history
    except (EngineUnavailable, BadInput) as error:
        gr.Warning(str(error))
        history.append(_note_message("⚠️ Answer interrupted", str(error)))
        yield history
    except Exception:
        log.exception("streaming an answer failed")
        gr.Warning(SOMETHING_BROKE)
        history.append(_note_message("⚠️ Answer interrupted", SOMETHING_BROKE))
        yield history


def _user_messages(message: dict[str, Any]) -> History:
    content: list[Any] = [{"path": _path(f)} for f in message.get("files") or []]
    if (message.get("text") or "").strip():
        content.append(message["text"])
    return [{"role": "user", "content": content}]


def _path(file: Any) -> str:
    return file if isinstance(file, str) else file.get("path", "")


def _annotations(stats: RequestStats, notes: tuple[str, ...]) -> History:
    messages = [{"role": "assistant", "content": stats.details(),
                 "metadata": {"title": f"📊 {stats.summary()}", "status": "done"}}]
    if notes:
        messages.append(_note_message("ℹ️ Prompt notes", "\n".join(f"- {n}" for n in notes)))
    return messages


def _note_message(title: str, text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text, "metadata": {"title": title, "status": "done"}}


def _header(info: EngineInfo) -> str:
    badge = f"`{info.model}`" + (f" @ `{info.revision[:12]}`" if info.revision else "")
    return (f"# phi4ui\nPhi-4-multimodal-instruct, text · images · speech · {badge} · "
            f"{info.kind} engine" + (f" · {info.device}" if info.device else ""))


def _status_text(engine: Engine) -> str:
    status = engine.status
    waited = time.monotonic() - status.since
    if status.state == "loading":
        return f"⏳ **Loading the model** ({status.message}, {waited:.0f} s). The page works; " \
               "answers start once it is ready."
    if status.state == "failed":
        return f"❌ **Engine unavailable:** {status.message}"
    return "✅ Engine ready"


async def _engine_panel(engine: Engine) -> str:
    if engine.status.state != "ready":
        return ""
    rows = snapshot_rows(await engine.snapshot())
    return "**Engine now**\n\n| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
