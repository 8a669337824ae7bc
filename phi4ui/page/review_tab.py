"""The review tab: recorded answers with filters, their details, rating, export of the
filtered set, the leaderboard of compared configurations, and (given an engine) the replay
of a bundle. Review shows every recorded answer, so it is built only where everyone who
reaches the page may see them all."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import gradio as gr

from phi4ui.core.engine import Engine
from phi4ui.errors import Phi4UIError
from phi4ui.evaluation.review_query import ReviewFilter
from phi4ui.evaluation.store import Store
from phi4ui.page import eval_views
from phi4ui.page.eval_common import (
    DEFAULT_TAGS,
    Outputs,
    bind,
    export_download,
    shows_everyones_records,
    split_tags,
    tag_fields,
    warn,
)
from phi4ui.page.files import PageFiles
from phi4ui.page.gradio_workarounds import NO_PROGRESS
from phi4ui.page.leaderboard_panel import build_leaderboard_panel
from phi4ui.page.replay_panel import build_replay_panel

REVIEW_NEEDS_LOGIN = ("Review lists every recorded answer of everyone, so on a public address "
                      "it needs a login: start the app with `PHI4UI_AUTH` or `--auth-file`.")
RATINGS = ["any", "up", "down", "unrated", "voted"]
ORIGINS = ["", "chat", "api", "batch", "side-by-side", "replay"]
SELECT_FIRST = "Select an answer first."
FOUND = Outputs("table", "found", "tag")
SELECTED = Outputs("selected", "details", "comment", "tags", "more")
DETAILS = Outputs("details", "comment", "tags", "more")


@dataclass
class ReviewParts:
    """The components the events refer to."""

    tab: gr.Tab
    filters: list[Any]  # rating, tag, origin, since, until, text
    tag: gr.Dropdown
    search: gr.Button
    table: gr.Dataframe
    found: gr.State  # the ids of the answers in the table
    selected: gr.State  # the id of the answer shown in full
    details: gr.Markdown
    up: gr.Button
    down: gr.Button
    comment: gr.Textbox
    tags: gr.CheckboxGroup
    more: gr.Textbox
    save: gr.Button
    export: gr.Button
    download: gr.DownloadButton


def build_review_tab(store: Store | None, engine: Engine | None, files: PageFiles, *,
                     everyone_may_review: bool = True) -> None:
    """`everyone_may_review`: a login is required, or only this machine can connect."""
    with gr.Tab("Review", id="review", elem_id="tab-review") as tab:
        if not shows_everyones_records(store, everyone_may_review, REVIEW_NEEDS_LOGIN,
                                       "review-needs-login"):
            return
        assert store is not None
        parts = render(tab)
        build_leaderboard_panel(store, tab)
        if engine is not None:
            build_replay_panel(engine, store, files)
    wire(parts, ReviewHandlers(store, files))


def render(tab: gr.Tab) -> ReviewParts:
    """The tab's content, inside `tab`."""
    with gr.Row():
        rating = gr.Dropdown(RATINGS, value="any", label="Rating", elem_id="review-rating")
        tag = gr.Dropdown([""], value="", allow_custom_value=True, label="Tag",
                          elem_id="review-tag")
        origin = gr.Dropdown(ORIGINS, value="", label="Origin", elem_id="review-origin")
        since = gr.Textbox(label="From (YYYY-MM-DD, UTC)", elem_id="review-since")
        until = gr.Textbox(label="To (YYYY-MM-DD, UTC)", elem_id="review-until")
        text = gr.Textbox(label="Text in prompt or answer", elem_id="review-text")
    search = gr.Button("Search", variant="primary", elem_id="review-search")
    table = gr.Dataframe(headers=eval_views.REVIEW_COLUMNS, type="array", interactive=False,
                         wrap=True, elem_id="review-table")
    found, selected = gr.State([]), gr.State(None)
    details = gr.Markdown("Select an answer to see it in full.", elem_id="review-details")
    with gr.Row():
        up = gr.Button("👍 Up", elem_id="review-up")
        down = gr.Button("👎 Down", elem_id="review-down")
        comment = gr.Textbox(label="Comment", elem_id="review-comment", scale=3)
        tags = gr.CheckboxGroup(DEFAULT_TAGS, label="Tags", elem_id="review-tags", scale=3)
        more = gr.Textbox(label="More tags", elem_id="review-more-tags")
        save = gr.Button("Save", elem_id="review-save")
    with gr.Row():
        export = gr.Button("Export the filtered set", elem_id="review-export")
        download = gr.DownloadButton("Download", visible=False, elem_id="review-download")
    return ReviewParts(tab=tab, filters=[rating, tag, origin, since, until, text], tag=tag,
                       search=search, table=table, found=found, selected=selected,
                       details=details, up=up, down=down, comment=comment, tags=tags,
                       more=more, save=save, export=export, download=download)


def wire(p: ReviewParts, h: ReviewHandlers) -> None:
    for trigger in (p.search.click, p.tab.select):
        trigger(h.on_search, p.filters, FOUND.components(p), **NO_PROGRESS)
    p.table.select(h.on_select, [p.found], SELECTED.components(p))
    rating_outputs = DETAILS.components(p)
    p.up.click(bind(h.on_thumbs, score=1), [p.selected], rating_outputs)
    p.down.click(bind(h.on_thumbs, score=-1), [p.selected], rating_outputs)
    p.save.click(h.on_annotate, [p.selected, p.comment, p.tags, p.more], rating_outputs)
    p.export.click(h.on_export, [p.found], [p.download])


class ReviewHandlers:
    """What each event does, for one page's store."""

    def __init__(self, store: Store, files: PageFiles) -> None:
        self.store = store
        self.files = files

    async def on_search(self, rating: str, tag: str, origin: str, since: str, until: str,
                        text: str) -> tuple[Any, ...]:
        query = ReviewFilter(rating=rating or "any",  # type: ignore[arg-type]
                             tag=tag or "", origin=origin or "", since=since or "",
                             until=until or "", text=text or "")
        try:
            rows = await asyncio.to_thread(self.store.search, query)
            known = await asyncio.to_thread(self.store.tags_in_use)
        except Phi4UIError as error:
            warn(error)
            return FOUND()
        return FOUND(table=eval_views.review_rows(rows), found=[r.id for r in rows],
                     tag=gr.Dropdown(choices=["", *known]))

    async def on_select(self, ids: list[str], event: gr.SelectData) -> tuple[Any, ...]:
        # The row's own id cell, not its position: the table may have been sorted.
        shown = str((event.row_value or [""])[0])
        answer_id = next((i for i in ids if shown and i.startswith(shown)), None)
        if answer_id is None:
            return SELECTED()
        return SELECTED(selected=answer_id,
                        **await asyncio.to_thread(self.details, answer_id))

    async def on_thumbs(self, answer_id: str | None, *, score: int) -> tuple[Any, ...]:
        if answer_id is None:
            gr.Warning(SELECT_FIRST)
            return DETAILS()
        await asyncio.to_thread(self.store.rate, answer_id, score)
        return DETAILS(**await asyncio.to_thread(self.details, answer_id))

    async def on_annotate(self, answer_id: str | None, text: str | None,
                          chosen: list[str] | None, other: str | None) -> tuple[Any, ...]:
        if answer_id is None:
            gr.Warning(SELECT_FIRST)
            return DETAILS()
        await asyncio.to_thread(self.store.rate, answer_id, None, comment=text or "",
                                tags=split_tags(chosen, other))
        return DETAILS(**await asyncio.to_thread(self.details, answer_id))

    async def on_export(self, ids: list[str], request: gr.Request) -> Any:
        return await export_download(self.store, ids, "review", f" ({len(ids)} answers)",
                                     self.files, request)

    def details(self, answer_id: str) -> dict[str, Any]:
        """The answer in full, and its thumbs rating's comment and tags for the fields."""
        record = self.store.answer(answer_id)
        ratings = self.store.ratings(answer_id)
        thumbs = next((r for r in ratings if not r.versus_id), None)
        chosen, other = tag_fields(thumbs.tags if thumbs else ())
        return {"details": eval_views.record_details(record, ratings),
                "comment": thumbs.comment if thumbs else "", "tags": chosen, "more": other}
