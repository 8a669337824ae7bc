"""The review tab's leaderboard: the configurations compared side by side, ranked by a
Bradley–Terry fit of the votes (`phi4ui.evaluation.leaderboard`), with 95% intervals and
vote counts. Built inside the review tab, so only where everyone may review."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

import gradio as gr

from phi4ui.evaluation.leaderboard import Leaderboard, leaderboard, votes_in
from phi4ui.evaluation.store import Store
from phi4ui.page.eval_common import Outputs
from phi4ui.page.eval_views import escape
from phi4ui.page.gradio_workarounds import NO_PROGRESS

log = logging.getLogger(__name__)
COLUMNS = ["rank", "configuration", "score", "95% interval", "votes", "won", "lost", "tied"]
ABOUT = (
    "Every Compare vote is one game between the two configurations that answered; a tie "
    "counts half a win for each. The scores are a Bradley–Terry fit on the Elo scale (mean "
    "1000; 100 points apart, the higher one is preferred about 64% of the time); the interval "
    "is the 95% range over 200 resamples of the votes. A configuration is the engine, model "
    "and revision, the adapter the answer used (Compare's *auto* shows as the one chosen), "
    "the sampling and the system prompt; votes between answers of one configuration are "
    "left out.\n\n"
    "**Thumbs** (when ticked): answers by two configurations to the same conversation (the "
    "same texts and media), one rated 👍 and the other 👎, count as one vote for the 👍 one. "
    "Two equal thumbs do not say which answer is better, so they are left out.")
FAILED = "The leaderboard could not be read from the record; see the app's log."
SHOWN = Outputs("table", "summary")


@dataclass
class LeaderboardParts:
    accordion: gr.Accordion
    thumbs: gr.Checkbox
    refresh: gr.Button
    table: gr.Dataframe
    summary: gr.Markdown


def build_leaderboard_panel(store: Store, tab: gr.Tab) -> None:
    parts = render()
    handlers = LeaderboardHandlers(store)
    for trigger in (parts.refresh.click, parts.accordion.expand, parts.thumbs.change,
                    tab.select):
        trigger(handlers.on_show, [parts.thumbs], SHOWN.components(parts),
                **NO_PROGRESS)


def render() -> LeaderboardParts:
    with gr.Accordion("Leaderboard", open=False, elem_id="leaderboard") as accordion:
        gr.Markdown(ABOUT, elem_id="leaderboard-about")
        with gr.Row():
            thumbs = gr.Checkbox(False, label="Also count opposite thumbs on the same "
                                 "conversation", elem_id="leaderboard-thumbs")
            refresh = gr.Button("Refresh", elem_id="leaderboard-refresh")
        table = gr.Dataframe(headers=COLUMNS, type="array", interactive=False, wrap=True,
                             datatype="str", elem_id="leaderboard-table")
        summary = gr.Markdown("", elem_id="leaderboard-summary")
    return LeaderboardParts(accordion, thumbs, refresh, table, summary)


class LeaderboardHandlers:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def on_show(self, thumbs: Any) -> tuple[Any, ...]:
        try:
            board = await asyncio.to_thread(self.board, thumbs is True)
        except sqlite3.Error:
            log.exception("reading the leaderboard failed")
            return SHOWN(summary=FAILED)
        return SHOWN(table=leaderboard_rows(board), summary=escape(board.lines()[-1]))

    def board(self, thumbs: bool) -> Leaderboard:
        return leaderboard(votes_in(self.store, thumbs=thumbs))


def leaderboard_rows(board: Leaderboard) -> list[list[str]]:
    """Plain-text cells (the table shows them as text, so they need no escaping)."""
    return [[str(rank), s.label, f"{s.score:.0f}", f"{s.low:.0f} – {s.high:.0f}", str(s.votes),
             str(s.wins), str(s.losses), str(s.ties)]
            for rank, s in enumerate(board.standings, 1)]
