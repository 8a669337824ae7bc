"""When each step of the chat tab and its side panel runs: the events between the
components `chat_tab` lays out and the `ChatHandlers` that do the work.

Sending a message is one queued step: the browser moves the message out of the input
and shows Stop, and the step checks the message against the engine, shows it, and
streams the answer (a refusal shows a warning and gives the message back to the
input). Retrying and editing check first in a step of their own, then stream the
same way. An answer ends itself: Stop makes it end with a note of how far it got,
Clear cancels it, and either aborts the engine request. The browser then gives the
send button back. The input stays usable while an answer streams; only sending waits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from phi4ui.page.chat_handlers import TICK_S, ChatHandlers
from phi4ui.page.gradio_workarounds import (
    ANSWERED_JS,
    INTERNAL,
    PREVIEW_JS,
    SEND_JS,
    answering_js,
    tell_refusals,
    then_as_if_changed,
)


@dataclass
class ChatParts:
    """The components the events refer to."""

    header: gr.HTML
    status: gr.Markdown
    chatbot: gr.Chatbot
    textbox: gr.MultimodalTextbox
    sent: gr.MultimodalTextbox  # hidden: the message being sent
    send_id: gr.Textbox  # hidden: the browser's id of that send
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


def wire_chat(p: ChatParts, h: ChatHandlers) -> None:
    # The chat shown in the browser is an output only: every step reads the server's copy
    # in `conversation`.
    c, r = p.conversation, p.refusal
    answer_outputs = {"outputs": [p.chatbot, p.session], "concurrency_limit": None,
                      # The chat alone shows the answer's progress: it hides its buttons.
                      **INTERNAL, "show_progress_on": [p.chatbot]}
    # Sending is one request: the browser moves the message out of the input, then the
    # queued step checks it, shows it and streams its answer (no input among its outputs:
    # Gradio would rebuild it on every update). A refusal gives the message back.
    moved = p.textbox.submit(None, [p.textbox], [p.textbox, p.sent, p.send_id, p.cost],
                             js=SEND_JS, **INTERNAL)
    send = moved.success(h.send, [p.sent, p.send_id, c, p.session, *p.settings, r],
                         **answer_outputs)
    send.failure(h.unsent, [p.sent, p.textbox, p.send_id, c, r], [p.textbox],
                 js=ANSWERED_JS, concurrency_limit=None, **INTERNAL)
    # Retrying and editing check first in a step that is not queued and may refuse (see
    # `gradio_workarounds` for how a refusal is told), then the answer streams.
    starts = [
        p.chatbot.retry(h.accept_retry, [c, r], [p.chatbot], queue=False, **INTERNAL),
        p.chatbot.edit(h.accept_edit, [c, r], [p.chatbot], queue=False, **INTERNAL),
    ]
    undo = p.chatbot.undo(h.undo, [c, r], [p.chatbot, p.textbox], queue=False, **INTERNAL)
    tell_refusals([*starts, undo], r)
    answers = [send]
    for start in starts:
        start.success(None, None, None, js=answering_js(True), **INTERNAL)
        answer = start.success(h.answer, [c, p.session, *p.settings], **answer_outputs)
        answer.failure(h.not_started, [c], [p.chatbot], js=ANSWERED_JS, queue=False,
                       **INTERNAL)
        answers.append(answer)
    for answer in answers:  # after a failure, the `.failure` step gives Send back
        answer.success(None, None, None, js=answering_js(False), **INTERNAL)
    # Stop is a signal the answer reads, so that the answer itself ends with a note of how
    # far it got: no step after it, and it also stops an answer that has not begun. Clear
    # cancels the answer outright.
    p.textbox.stop(h.request_stop, [c], None, queue=False, **INTERNAL)
    p.chatbot.clear(h.clear, [c], None, cancels=answers, queue=False, **INTERNAL)
    _wire_inputs(p, h)


def _wire_inputs(p: ChatParts, h: ChatHandlers) -> None:
    c = p.conversation
    preview_args = ([p.textbox, c, p.settings[0]], [p.cost])
    gr.on([p.textbox.change, p.settings[0].change], h.preview, *preview_args, queue=False,
          trigger_mode="always_last", js=PREVIEW_JS, **INTERNAL)
    p.chatbot.example_select(h.use_example, None, [p.textbox], queue=False, **INTERNAL)
    attached = p.camera.change(h.attach_photo, [p.camera, p.textbox], [p.textbox, p.camera],
                               queue=False, **INTERNAL)
    then_as_if_changed(attached, h.preview, *preview_args)


def wire_panels(page: gr.Blocks, p: ChatParts, h: ChatHandlers) -> None:
    page.load(h.load_settings, [p.stored], p.settings, queue=False, **INTERNAL)
    gr.on([s.change for s in p.settings], h.save_settings, p.settings, [p.stored], queue=False,
          trigger_mode="always_last", **INTERNAL)
    p.reset.click(h.default_settings, None, p.settings, queue=False, **INTERNAL)
    p.card_preset.click(h.card_settings, None, p.settings, queue=False, **INTERNAL)
    # The session's line comes with the engine panel: as an output of the answer step, it
    # would cost Gradio a component's postprocessing (a thread hop) on every update.
    panel_outputs = [p.header, p.status, p.live, p.plot, p.engine_settings, p.session_line]
    gr.Timer(TICK_S).tick(h.refresh, [p.session], panel_outputs, queue=False, **INTERNAL)
    page.load(h.refresh, [p.session], panel_outputs, queue=False, **INTERNAL)
