"""Text, tables and the plot of the run-against-run tab: pure functions of a comparison.
Recorded text (run sources, prompts, answers) reaches Markdown only through
`eval_views.escape`; Dataframe cells are plain text (datatype "str")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from phi4ui.evaluation.metrics import METRICS
from phi4ui.evaluation.run_compare import CaseChange, MetricDifference, RunComparison, RunInfo
from phi4ui.page.eval_common import printable
from phi4ui.page.eval_views import escape, shorten

DIFFERENCE_COLUMNS = ["metric", "A", "B", "B - A", "95% interval", "B better", "B worse",
                      "same", "cases"]
CHANGE_COLUMNS = ["case", "metric", "A", "B", "prompt", "answer A", "answer B"]
PLOT_X, PLOT_Y, PLOT_COLOR = "case", "gain of B (points)", "verdict"
SHOWN_CHANGES = 50  # each way, in the tables; the downloads hold every case


def run_choices(runs: Sequence[RunInfo]) -> list[tuple[str, str]]:
    """The pickers' choices: (label, batch id)."""
    return [(printable(run.label), run.batch_id) for run in runs]


def summary_markdown(comparison: RunComparison) -> str:
    return "\n".join([
        f"**A:** {escape(comparison.run_a.label)}  ", f"**B:** {escape(comparison.run_b.label)}",
        "", escape(comparison.counts()), "",
        *(f"- {escape(d.sentence())}" for d in comparison.differences), "",
        "How each metric treats the text:", "",
        *(f"- {escape(line)}" for line in comparison.normalisation())])


def difference_rows(differences: Sequence[MetricDifference]) -> list[list[str]]:
    return [_difference_row(d) for d in differences]


def _difference_row(difference: MetricDifference) -> list[str]:
    metric, diff = METRICS[difference.metric], difference.difference
    scale = 100 if metric.percent else 1

    def points(value: float | None) -> str:
        return "–" if value is None else f"{value * scale:+.1f}"

    direction = " (lower is better)" if metric.lower_is_better else ""
    return [metric.label + direction, metric.shown(difference.run_a.estimate),
            metric.shown(difference.run_b.estimate), points(diff.estimate),
            f"{points(diff.low)} to {points(diff.high)}", str(difference.better),
            str(difference.worse), str(difference.same), str(diff.count)]


def change_rows(changes: Sequence[CaseChange]) -> list[list[str]]:
    """The cases side by side: both runs' score and answer."""
    return [[printable(c.key), METRICS[c.metric].label, METRICS[c.metric].shown(c.run_a),
             METRICS[c.metric].shown(c.run_b), printable(shorten(c.prompt)),
             printable(c.answer_a), printable(c.answer_b)] for c in changes[:SHOWN_CHANGES]]


def gains_frame(comparison: RunComparison) -> pd.DataFrame:
    """Each case's gain of B over A on its main metric, in points (percentages and BLEU
    alike run 0 to 100), positive where B is better."""
    rows: list[dict[str, Any]] = [
        {PLOT_X: printable(c.key),
         PLOT_Y: c.gain * (100 if METRICS[c.metric].percent else 1),
         PLOT_COLOR: "B better" if c.gain > 0 else "B worse" if c.gain < 0 else "same"}
        for c in comparison.changes]
    return pd.DataFrame(rows, columns=[PLOT_X, PLOT_Y, PLOT_COLOR])
