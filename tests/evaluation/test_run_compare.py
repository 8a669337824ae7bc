"""Run against run on a real SQLite store: planted improvements and regressions are found,
the paired interval says which way the run moved, and the export holds every case."""

from __future__ import annotations

import csv
import json

import pytest

from phi4ui.errors import BadInput
from phi4ui.evaluation.run_compare import compare_runs, list_runs, write_comparison
from phi4ui.evaluation.store import Store
from tests.support.recorded_runs import Planted, record_run, transcripts

FIXED = range(0, 30, 2)  # 15 of 30 cases fixed
BROKEN = (3, 7)


@pytest.fixture()
def store(tmp_path):
    store = Store(tmp_path / "answers.db")
    yield store
    store.close()


def test_planted_improvements_and_regressions_are_found(store):
    run_a, run_b = transcripts(30, fixed=FIXED, broken=BROKEN)
    first, second = record_run(store, run_a), record_run(store, run_b)
    found = compare_runs(store, first[:8], second[:8])
    assert {c.key for c in found.better} == {f"t{i}" for i in FIXED}
    assert {c.key for c in found.worse} == {"t3", "t7"}
    wer = next(d for d in found.differences if d.metric == "wer")
    assert (wer.better, wer.worse, wer.same, wer.difference.count) == (15, 2, 13, 30)
    assert wer.run_a.estimate == pytest.approx(0.2)
    assert wer.difference.estimate == pytest.approx((15 * -0.2 + 2 * 0.1) / 30)
    assert wer.difference.high is not None and wer.difference.high < 0, "B is surely better"
    assert found.better[0].metric == "wer" and found.better[0].gain == pytest.approx(0.2)


def test_no_change_gives_an_interval_around_zero_and_counts_unmatched_and_failed(store):
    same = [Planted(f"q{i}", "paris", "Paris.", task="vqa") for i in range(10)]
    extra = [Planted("only-b", "x", "x"), Planted("q0", "paris", None, task="vqa")]
    first = record_run(store, same)
    second = record_run(store, [*same[1:], *extra])
    found = compare_runs(store, first, second)
    assert (found.matched, found.unscored, found.only_one) == (10, 1, ("only-b",))
    for difference in found.differences:
        assert difference.difference.estimate == 0 and difference.difference.covers(0)
    assert "B better on 0 of 9 cases, worse on 0" in "\n".join(found.lines())


def test_the_export_holds_each_case_and_every_difference(store, tmp_path):
    run_a, run_b = transcripts(6, fixed=(1,), broken=(2,))
    found = compare_runs(store, record_run(store, run_a), record_run(store, run_b))
    csv_path, json_path = write_comparison(found, tmp_path / "out")
    rows = list(csv.DictReader(csv_path.read_text(encoding="utf-8").splitlines()))
    verdicts = [(r["case"], r["verdict"]) for r in rows]
    assert verdicts[0] == ("t1", "better") and verdicts[-1] == ("t2", "worse")
    assert len(rows) == 6 and rows[0]["answer_b"] == run_b[1].answer
    document = json.loads(json_path.read_text(encoding="utf-8"))
    assert {d["metric"] for d in document["differences"]} == {"wer", "cer"}
    assert "jiwer" in document["normalisation"]["wer"]
    assert document["differences"][0]["difference"]["count"] == 6


def test_runs_are_listed_newest_first_and_bad_references_are_refused(store):
    first = record_run(store, [Planted("a", "x", "x")], source="/data/first.jsonl")
    second = record_run(store, [Planted("a", "x", "y")], source="/data/second.jsonl")
    listed = list_runs(store)
    assert [run.batch_id for run in listed] == [second, first]
    assert "second.jsonl" in listed[0].label and "embedded tiny@abc123" in listed[0].label
    for reference, message in [("zz'; --", "not a run id"), ("abc", "not a run id"),
                               ("0000000000", "No batch run")]:
        with pytest.raises(BadInput, match=message):
            compare_runs(store, reference, second)
    other = record_run(store, [Planted("b", "x", "x")])
    with pytest.raises(BadInput, match="share no case ids"):
        compare_runs(store, first, other)
