"""Under the chat: ratings (👍/👎 on the chatbot's answers, then a comment and tags) and the
export of the conversation as a bundle. Both read the server's copy of the conversation,
so a person rates and exports only the answers of their own session."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import gradio as gr

from phi4ui.core import history as chat_history
from phi4ui.core.conversation import Conversation
from phi4ui.errors import Phi4UIError
from phi4ui.evaluation.store import Rating, Store
from phi4ui.page import eval_views
from phi4ui.page.eval_common import (
    DEFAULT_TAGS,
    RECORDING_OFF,
    Outputs,
    export_download,
    split_tags,
    tag_fields,
    text_of,
    warn,
)
from phi4ui.page.files import PageFiles
from phi4ui.page.gradio_workarounds import NO_PROGRESS
from phi4ui.page.safe_markdown import code_span

NOT_RECORDED = "This answer was not recorded, so it cannot be rated."
RATE_FIRST = "Rate an answer with 👍 or 👎 first."
RATED = Outputs("rated", "status", "comment", "tags", "more")


@dataclass
class RatingParts:
    """The components the events refer to."""

    rated: gr.State  # the id of the answer rated last
    status: gr.Markdown
    comment: gr.Textbox
    tags: gr.CheckboxGroup
    more: gr.Textbox
    save: gr.Button
    export: gr.Button
    download: gr.DownloadButton


def build_chat_evaluation(chatbot: gr.Chatbot, conversation: gr.State, store: Store | None,
                          files: PageFiles) -> None:
    """Put it under the chatbot; `conversation` holds the session's `Conversation`."""
    if store is None:
        gr.Markdown(RECORDING_OFF, elem_id="rating-off")
        return
    wire(chatbot, conversation, render(), RatingHandlers(store, files))


def render() -> RatingParts:
    rated = gr.State(None)
    with gr.Accordion("Rate and export", open=False, elem_id="rate-panel"):
        status = gr.Markdown("Rate an answer with 👍 or 👎 under it; then add a comment or "
                             "tags here.", elem_id="rating-status")
        comment = gr.Textbox(label="Comment", lines=2, elem_id="rating-comment")
        tags = gr.CheckboxGroup(DEFAULT_TAGS, label="Tags", elem_id="rating-tags")
        more = gr.Textbox(label="More tags (comma-separated)", elem_id="rating-more-tags")
        save = gr.Button("Save comment and tags", elem_id="rating-save")
        with gr.Row():
            export = gr.Button("Export conversation", elem_id="export-conversation")
            download = gr.DownloadButton("Download bundle", visible=False,
                                         elem_id="export-download")
    return RatingParts(rated=rated, status=status, comment=comment, tags=tags, more=more,
                       save=save, export=export, download=download)


def wire(chatbot: gr.Chatbot, conversation: gr.State, p: RatingParts,
         h: RatingHandlers) -> None:
    chatbot.like(h.on_like, [conversation], RATED.components(p), **NO_PROGRESS)
    p.save.click(h.on_save, [p.rated, p.comment, p.tags, p.more], [p.status],
                 **NO_PROGRESS)
    p.export.click(h.on_export, [conversation], [p.download])


class RatingHandlers:
    """What each event does, for one page's store."""

    def __init__(self, store: Store, files: PageFiles) -> None:
        self.store = store
        self.files = files

    async def on_like(self, chat: Conversation, like: gr.LikeData) -> tuple[Any, ...]:
        """A 👍 or 👎 (or its undoing) on the answer at `like.index` of the session's chat."""
        answer_id = chat_history.answer_id_at(chat.messages, like.index) \
            if isinstance(like.index, int | list | tuple) else None
        if answer_id is None:
            gr.Warning(NOT_RECORDED)
            return RATED()
        score = 1 if like.liked is True else -1 if like.liked is False else 0
        try:
            rating = await asyncio.to_thread(self.store.rate, answer_id, score)
        except Phi4UIError as error:
            warn(error)
            return RATED()
        chosen, other = tag_fields(rating.tags)
        return RATED(rated=answer_id, status=rated_text(answer_id, rating),
                     comment=rating.comment, tags=chosen, more=other)

    async def on_save(self, answer_id: str | None, text: Any, chosen: Any, other: Any) -> Any:
        if answer_id is None:
            gr.Warning(RATE_FIRST)
            return gr.skip()
        try:
            rating = await asyncio.to_thread(self.store.rate, answer_id, None,
                                             comment=text_of(text),
                                             tags=split_tags(chosen, other))
        except Phi4UIError as error:
            warn(error)
            return gr.skip()
        return saved_text(answer_id, rating)

    async def on_export(self, chat: Conversation, request: gr.Request) -> Any:
        return await export_download(self.store, chat.answer_ids(), "conversation", "",
                                     self.files, request)


def rated_text(answer_id: str, rating: Rating) -> str:
    return (f"Rated answer {code_span(answer_id[:8])} "
            f"**{eval_views.RATING_WORDS[rating.score]}**. Add a comment or tags and save.")


def saved_text(answer_id: str, rating: Rating) -> str:
    tags_note = ": " + eval_views.escape(", ".join(rating.tags)) if rating.tags else ""
    return (f"Saved for answer {code_span(answer_id[:8])} (rated "
            f"**{eval_views.RATING_WORDS[rating.score]}**){tags_note}.")
