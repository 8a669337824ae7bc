"""The run-against-run tab's text, tables and plot from a comparison of two recorded runs:
recorded text is shown as text, figures in the metric's own units."""

from __future__ import annotations

import pytest

from phi4ui.evaluation.run_compare import compare_runs
from phi4ui.evaluation.store import Store
from phi4ui.page import run_views
from tests.support.recorded_runs import Planted, record_run, transcripts


def test_the_views_show_recorded_text_as_text_and_gains_in_points(tmp_path):
    store = Store(tmp_path / "answers.db")
    try:
        run_a, run_b = transcripts(4, fixed=(1,), broken=(2,))
        run_b[3] = Planted("t3", run_b[3].expected, "<img src=x onerror=alert(1)>",
                           task="transcription")
        first = record_run(store, run_a, source="/tmp/cases<img src=x onerror=y>.jsonl")
        comparison = compare_runs(store, first, record_run(store, run_b))
    finally:
        store.close()
    summary = run_views.summary_markdown(comparison)
    assert "<img" not in summary and "&lt;img" in summary
    assert "WER\\: A 20\\.0%" in summary and "jiwer" in summary
    assert run_views.difference_rows(comparison.differences)[0][:3] == [
        "WER (lower is better)", "20.0%", "37.5%"]
    worse = run_views.change_rows(comparison.worse)
    assert worse[0][0] == "t3" and worse[0][-1] == "<img src=x onerror=alert(1)>"
    frame = run_views.gains_frame(comparison)
    assert list(frame[run_views.PLOT_Y]) == pytest.approx([20.0, 0.0, -10.0, -80.0])
    assert list(frame[run_views.PLOT_COLOR]) == ["B better", "same", "B worse", "B worse"]
