"""Run against run in the page: two batch runs written straight into the app's record,
one with planted improvements and a regression, compared in the Runs tab with its table,
plot, cases side by side and CSV download."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from phi4ui.evaluation.store import Store
from tests.browser.chatpage import ChatPage
from tests.browser.test_evaluation import download, open_tab, table_rows
from tests.support.recorded_runs import record_run, transcripts

pytestmark = pytest.mark.browser


def test_the_runs_tab_compares_two_recorded_runs(chat: ChatPage, app_db: Path,
                                                 tmp_path: Path) -> None:
    store = Store(app_db)
    try:
        run_a, run_b = transcripts(12, fixed=(0, 4, 8), broken=(6,))
        first = record_run(store, run_a, source="before.jsonl")
        second = record_run(store, run_b, source="after <b>bold.jsonl")
    finally:
        store.close()

    page = chat.page
    open_tab(page, "Runs")
    # The two newest runs are picked: the older as A, the newer as B.
    expect(page.locator("#runs-b input")).to_have_value(starts_with(second[:8]),
                                                        timeout=15_000)
    expect(page.locator("#runs-a input")).to_have_value(starts_with(first[:8]))
    page.locator("#runs-compare").click()

    summary = page.locator("#runs-summary")
    expect(summary).to_contain_text("B better on 3 of 12 cases, worse on 1", timeout=30_000)
    expect(summary).to_contain_text("after <b>bold.jsonl")  # shown as text
    expect(summary).to_contain_text("jiwer, after lowercasing")
    expect(table_rows(page, "runs-differences")).to_have_count(2)
    expect(table_rows(page, "runs-better")).to_have_count(3)
    expect(table_rows(page, "runs-worse")).to_have_count(1)
    expect(table_rows(page, "runs-worse").first).to_contain_text("t6")
    expect(page.locator("#runs-plot canvas, #runs-plot svg").first).to_be_visible()
    chat.shot("eval-07-run-against-run")

    rows = list(csv.DictReader(download(page, "runs-csv", tmp_path / "runs.csv")
                               .read_text(encoding="utf-8").splitlines()))
    assert len(rows) == 12
    assert {r["case"] for r in rows if r["verdict"] == "better"} == {"t0", "t4", "t8"}


def starts_with(prefix: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(prefix))
