"""The run-against-run tab: pick two recorded batch runs over the same cases, see each
metric's paired difference with its interval, a plot of every case's gain, the cases that
got better and worse side by side, and download it all as CSV and JSON.

It shows every recorded batch run of everyone, so, like Review, it is only built where a
login is required or only this machine can connect."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr

from phi4ui.errors import Phi4UIError
from phi4ui.evaluation.run_compare import (
    RunComparison,
    compare_runs,
    list_runs,
    write_csv,
    write_json,
)
from phi4ui.evaluation.store import Store
from phi4ui.page import run_views
from phi4ui.page.eval_common import (
    Outputs,
    export_folder,
    internal,
    shows_everyones_records,
    warn,
)
from phi4ui.page.eval_views import escape
from phi4ui.page.files import PageFiles
from phi4ui.page.gradio_workarounds import NO_PROGRESS

log = logging.getLogger(__name__)
RUNS_NEED_LOGIN = ("Runs lists the recorded batch runs of everyone, so on a public address "
                   "it needs a login: start the app with `PHI4UI_AUTH` or `--auth-file`.")
ABOUT = (
    "Pick two recorded batch runs of the same case file (two configurations, engines, "
    "revisions or adapters): A, then B. Cases are paired by their id; each metric's B - A is "
    "the mean paired difference with a bootstrap 95% interval over the cases, and a case "
    "counts as better or worse by its task's main metric (WER, BLEU, ANLS, or whether the "
    "expected answer was found). Also on the command line: "
    "`python -m phi4ui compare-runs --list`.")
PICKED = Outputs("run_a", "run_b")
SHOWN = Outputs("summary", "differences", "plot", "better", "worse", "csv", "json")


@dataclass
class RunsParts:
    tab: gr.Tab
    run_a: gr.Dropdown
    run_b: gr.Dropdown
    refresh: gr.Button
    compare: gr.Button
    summary: gr.Markdown
    differences: gr.Dataframe
    plot: gr.BarPlot
    better: gr.Dataframe
    worse: gr.Dataframe
    csv: gr.DownloadButton
    json: gr.DownloadButton


def build_runs_tab(store: Store | None, files: PageFiles, *,
                   everyone_may_review: bool = True) -> None:
    with gr.Tab("Runs", id="runs", elem_id="tab-runs") as tab:
        if not shows_everyones_records(store, everyone_may_review, RUNS_NEED_LOGIN,
                                       "runs-need-login"):
            return
        assert store is not None
        parts = render(tab)
    wire(parts, RunsHandlers(store, files))


def render(tab: gr.Tab) -> RunsParts:
    gr.Markdown(ABOUT, elem_id="runs-about")
    with gr.Row():
        run_a = gr.Dropdown([], label="Run A (before)", elem_id="runs-a", scale=3)
        run_b = gr.Dropdown([], label="Run B (after)", elem_id="runs-b", scale=3)
        refresh = gr.Button("Refresh the list", elem_id="runs-refresh", scale=1)
    compare = gr.Button("Compare", variant="primary", elem_id="runs-compare")
    summary = gr.Markdown(elem_id="runs-summary")
    differences = gr.Dataframe(headers=run_views.DIFFERENCE_COLUMNS, type="array",
                               datatype="str", interactive=False, wrap=True,
                               elem_id="runs-differences")
    plot = gr.BarPlot(x=run_views.PLOT_X, y=run_views.PLOT_Y, color=run_views.PLOT_COLOR,
                      sort="-y", x_axis_labels_visible=False, label="Each case's gain of B",
                      color_map={"B better": "#16a34a", "B worse": "#dc2626",
                                 "same": "#94a3b8"}, elem_id="runs-plot")
    with gr.Row():
        with gr.Column():
            gr.Markdown("**Better in B**")
            better = gr.Dataframe(headers=run_views.CHANGE_COLUMNS, type="array",
                                  datatype="str", interactive=False, wrap=True,
                                  elem_id="runs-better")
        with gr.Column():
            gr.Markdown("**Worse in B**")
            worse = gr.Dataframe(headers=run_views.CHANGE_COLUMNS, type="array",
                                 datatype="str", interactive=False, wrap=True,
                                 elem_id="runs-worse")
    with gr.Row():
        csv = gr.DownloadButton("Download CSV", visible=False, elem_id="runs-csv")
        json = gr.DownloadButton("Download JSON", visible=False, elem_id="runs-json")
    return RunsParts(tab, run_a, run_b, refresh, compare, summary, differences, plot, better,
                     worse, csv, json)


def wire(p: RunsParts, h: RunsHandlers) -> None:
    for trigger in (p.tab.select, p.refresh.click):
        trigger(h.on_list, None, PICKED.components(p), **NO_PROGRESS)
    p.compare.click(h.on_compare, [p.run_a, p.run_b], SHOWN.components(p),
                    concurrency_limit=2)


class RunsHandlers:
    def __init__(self, store: Store, files: PageFiles) -> None:
        self.store = store
        self.files = files

    async def on_list(self) -> tuple[Any, ...]:
        runs = await asyncio.to_thread(list_runs, self.store)
        choices = run_views.run_choices(runs)
        newest = choices[0][1] if choices else None
        older = choices[1][1] if len(choices) > 1 else newest
        return PICKED(run_a=gr.Dropdown(choices=choices, value=older),
                      run_b=gr.Dropdown(choices=choices, value=newest))

    async def on_compare(self, run_a: Any, run_b: Any, request: gr.Request) -> tuple[Any, ...]:
        hidden = gr.DownloadButton(visible=False)
        try:
            comparison = await asyncio.to_thread(compare_runs, self.store, _text(run_a),
                                                 _text(run_b))
        except Phi4UIError as error:
            warn(error)
            return SHOWN(summary=f"⚠️ {escape(str(error))}", csv=hidden, json=hidden)
        except Exception as error:
            log.exception("comparing runs failed")
            return SHOWN(summary=f"⚠️ {escape(internal(error))}", csv=hidden, json=hidden)
        return SHOWN(summary=run_views.summary_markdown(comparison),
                     differences=run_views.difference_rows(comparison.differences),
                     plot=run_views.gains_frame(comparison),
                     better=run_views.change_rows(comparison.better),
                     worse=run_views.change_rows(comparison.worse),
                     **await self.downloads(comparison, request))

    async def downloads(self, comparison: RunComparison, request: gr.Request) -> dict[str, Any]:
        """The two download buttons, for this visitor only; hidden if writing failed."""
        folder = export_folder()
        stem = f"phi4ui-runs-{comparison.run_a.batch_id[:8]}-{comparison.run_b.batch_id[:8]}"
        csv_path, json_path = folder / f"{stem}.csv", folder / f"{stem}.json"
        try:
            await asyncio.to_thread(write_csv, comparison, csv_path)
            await asyncio.to_thread(write_json, comparison, json_path)
            await asyncio.to_thread(self.files.grant, request, [csv_path, json_path])
        except Exception:
            log.exception("writing the comparison's downloads failed")
            return {"csv": gr.DownloadButton(visible=False),
                    "json": gr.DownloadButton(visible=False)}
        return {"csv": gr.DownloadButton(value=str(csv_path), visible=True),
                "json": gr.DownloadButton(value=str(json_path), visible=True)}


def _text(value: Any) -> str:
    """A picker's value as the browser sent it: only text is a run id."""
    return value if isinstance(value, str) else ""
