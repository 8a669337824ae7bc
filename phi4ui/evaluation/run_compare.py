"""Run against run: two recorded batch runs over the same cases, scored again and paired by
case id (two configurations, engines, revisions or adapters).

    compare_runs(store, "3f2a", "9c1d") -> RunComparison
    write_comparison(comparison, folder) -> (comparison.csv, comparison.json)

For each metric the cases scored in both runs give each run's mean, and the mean
paired difference (B - A) with a paired bootstrap 95% interval; a case counts as
better or worse by its task's main metric. The metrics are computed again from
the recorded answers (`phi4ui.evaluation.metrics`), so runs recorded before a
metric changed are compared on equal terms.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from phi4ui.errors import BadInput
from phi4ui.evaluation import csvsafe
from phi4ui.evaluation.intervals import Interval, bootstrap_ci, paired_bootstrap_ci
from phi4ui.evaluation.metrics import (
    METRICS,
    NORMALISATION,
    TASK_METRICS,
    resolve_task,
    score_case,
)
from phi4ui.evaluation.rows import BatchCaseRow, BatchRow
from phi4ui.evaluation.store import BatchAnswer, Store

MAIN_METRIC = {"transcription": "wer", "translation": "bleu", "ocr": "anls", "vqa": "anls",
               "contains": "contains"}
CSV_COLUMNS = ("case", "task", "metric", "run_a", "run_b", "difference", "verdict", "prompt",
               "answer_a", "answer_b")
_RUN_ID = re.compile(r"[0-9a-f]{4,32}")


@dataclass(frozen=True)
class RunInfo:
    batch_id: str
    created_at: str
    source: str
    cases: int
    finished: bool
    engine: str  # "embedded model@revision"
    adapters: tuple[str, ...]
    options: dict[str, Any]

    @property
    def label(self) -> str:
        adapters = f", adapter {'/'.join(self.adapters)}" if self.adapters else ""
        state = "" if self.finished else ", unfinished"
        return (f"{self.batch_id[:8]} · {self.created_at[:16].replace('T', ' ')} · "
                f"{Path(self.source).name} · {self.cases} cases · {self.engine}{adapters}"
                f"{state}")


@dataclass(frozen=True)
class ScoredCase:
    key: str  # the case id; "id#2" for its second use in one run
    prompt: str
    task: str
    answer: str | None
    error: str | None
    scores: dict[str, float]


@dataclass(frozen=True)
class MetricDifference:
    metric: str
    run_a: Interval  # the mean over the cases scored in both runs
    run_b: Interval
    difference: Interval  # B - A, paired by case
    better: int  # cases where B beats A on this metric
    worse: int
    same: int

    def sentence(self) -> str:
        metric = METRICS[self.metric]
        diff = self.difference
        scale = 100 if metric.percent else 1
        unit = " points" if metric.percent else ""

        def signed(value: float | None) -> str:
            return "–" if value is None else f"{value * scale:+.1f}"

        return (f"{metric.label}: A {metric.shown(self.run_a.estimate)}, B "
                f"{metric.shown(self.run_b.estimate)}; B - A {signed(diff.estimate)}{unit} "
                f"(95% CI {signed(diff.low)} to {signed(diff.high)}); B better on "
                f"{self.better} of {diff.count} cases, worse on {self.worse}"
                f"{' (lower is better)' if metric.lower_is_better else ''}")


@dataclass(frozen=True)
class CaseChange:
    key: str
    task: str
    metric: str  # the task's main metric
    run_a: float
    run_b: float
    gain: float  # > 0: B is better, whichever way the metric runs
    prompt: str
    answer_a: str
    answer_b: str


@dataclass(frozen=True)
class RunComparison:
    run_a: RunInfo
    run_b: RunInfo
    matched: int  # cases in both runs
    only_one: tuple[str, ...]  # case ids in one run only
    unscored: int  # matched cases that failed in either run
    differences: tuple[MetricDifference, ...]
    changes: tuple[CaseChange, ...]  # the best gain first

    @property
    def better(self) -> list[CaseChange]:
        return [change for change in self.changes if change.gain > 0]

    @property
    def worse(self) -> list[CaseChange]:
        return [change for change in reversed(self.changes) if change.gain < 0]

    def counts(self) -> str:
        return (f"{self.matched} cases in both runs; {self.unscored} failed in either; "
                f"{len(self.only_one)} in one run only")

    def normalisation(self) -> list[str]:
        return [f"{METRICS[d.metric].label}: {NORMALISATION[d.metric]}"
                for d in self.differences]

    def lines(self) -> list[str]:
        return [f"A: {self.run_a.label}", f"B: {self.run_b.label}", self.counts(),
                *(difference.sentence() for difference in self.differences),
                *self.normalisation()]

    def as_dict(self) -> dict[str, Any]:
        return {"run_a": asdict(self.run_a), "run_b": asdict(self.run_b),
                "matched": self.matched, "only_one": list(self.only_one),
                "unscored": self.unscored,
                "differences": [asdict(d) for d in self.differences],
                "normalisation": {d.metric: NORMALISATION[d.metric] for d in self.differences},
                "changes": [asdict(c) for c in self.changes]}


# ---------------------------------------------------------------- runs

def list_runs(store: Store, limit: int = 200) -> list[RunInfo]:
    return [run_info(store, row) for row in store.batches(limit)]


def find_run(store: Store, reference: str) -> BatchRow:
    """The run whose id is or starts with `reference` (at least 4 hex digits)."""
    wanted = reference.strip().lower()
    if not _RUN_ID.fullmatch(wanted):
        raise BadInput(f"{reference[:40]!r} is not a run id: give its first 4 or more hex "
                       "digits, as `python -m phi4ui compare-runs --list` shows them.")
    found = store.batches_starting(wanted)
    if not found:
        raise BadInput(f"No batch run {wanted} in {store.path}; list them with "
                       "`python -m phi4ui compare-runs --list`.")
    if len(found) > 1:
        raise BadInput(f"Several batch runs start with {wanted}; give more of the id.")
    return found[0]


def run_info(store: Store, row: BatchRow,
             cases: list[tuple[BatchCaseRow, BatchAnswer | None]] | None = None) -> RunInfo:
    answers = [a for _, a in (store.batch_answers(row.id) if cases is None else cases) if a]
    engines = Counter(f"{a.engine_kind} {a.model}" + (f"@{a.revision[:12]}" if a.revision
                                                     else "") for a in answers)
    adapters = tuple(sorted({a.adapter for a in answers if a.adapter}))
    options = {k: v for k, v in row.options.items() if k != "user"}
    return RunInfo(row.id, row.created_at, row.source, row.cases, row.finished_at is not None,
                   engines.most_common(1)[0][0] if engines else "no answers", adapters,
                   options)


def scored_cases(cases: list[tuple[BatchCaseRow, BatchAnswer | None]]) -> dict[str, ScoredCase]:
    """Each case of a run scored again from its recorded answer, by case id."""
    seen: Counter[str] = Counter()
    scored: dict[str, ScoredCase] = {}
    for case, answer in cases:
        seen[case.case_id] += 1
        key = case.case_id if seen[case.case_id] == 1 else f"{case.case_id}#{seen[case.case_id]}"
        task = case.task or resolve_task("", case.tags)
        failed = case.error is not None or answer is None
        scores = {} if failed or answer is None else score_case(
            task, answer.text, case.expected_answers, case.pattern).values
        scored[key] = ScoredCase(key, case.prompt, task, answer.text if answer else None,
                                 case.error or (None if answer else "no recorded answer"),
                                 scores)
    return scored


# ---------------------------------------------------------------- comparing

def compare_runs(store: Store, reference_a: str, reference_b: str, *,
                 seed: int = 0) -> RunComparison:
    row_a, row_b = find_run(store, reference_a), find_run(store, reference_b)
    cases_a, cases_b = store.batch_answers(row_a.id), store.batch_answers(row_b.id)
    scored_a, scored_b = scored_cases(cases_a), scored_cases(cases_b)
    keys = [key for key in scored_a if key in scored_b]
    if not keys:
        raise BadInput("These two runs share no case ids, so there is nothing to pair; "
                       "compare runs of the same case file.")
    pairs = [(scored_a[k], scored_b[k]) for k in keys]
    scored_pairs = [(a, b) for a, b in pairs if a.scores and b.scores]
    return RunComparison(
        run_info(store, row_a, cases_a), run_info(store, row_b, cases_b), len(keys),
        tuple(sorted(set(scored_a) ^ set(scored_b))), len(pairs) - len(scored_pairs),
        _differences(scored_pairs, seed), _changes(scored_pairs))


def _differences(pairs: list[tuple[ScoredCase, ScoredCase]],
                 seed: int) -> tuple[MetricDifference, ...]:
    found = []
    for name, metric in METRICS.items():
        values = [(a.scores[name], b.scores[name]) for a, b in pairs
                  if name in a.scores and name in b.scores]
        if not values:
            continue
        before, after = [v[0] for v in values], [v[1] for v in values]
        sign = -1 if metric.lower_is_better else 1
        gains = [sign * (b - a) for a, b in values]
        found.append(MetricDifference(
            name, bootstrap_ci(before, seed=seed), bootstrap_ci(after, seed=seed),
            paired_bootstrap_ci(before, after, seed=seed), sum(g > 0 for g in gains),
            sum(g < 0 for g in gains), sum(g == 0 for g in gains)))
    return tuple(found)


def _changes(pairs: list[tuple[ScoredCase, ScoredCase]]) -> tuple[CaseChange, ...]:
    changes = []
    for a, b in pairs:
        metric = _main_metric(a, b)
        if metric is None:
            continue
        sign = -1 if METRICS[metric].lower_is_better else 1
        before, after = a.scores[metric], b.scores[metric]
        changes.append(CaseChange(a.key, a.task, metric, before, after,
                                  sign * (after - before) + 0.0, a.prompt, a.answer or "",
                                  b.answer or ""))
    return tuple(sorted(changes, key=lambda change: -change.gain))


def _main_metric(a: ScoredCase, b: ScoredCase) -> str | None:
    """The task's main metric where both runs have it, else any metric both have."""
    preferred = [MAIN_METRIC.get(a.task, "contains"), *TASK_METRICS.get(a.task, ()),
                 "pattern"]
    return next((m for m in preferred if m in a.scores and m in b.scores), None)


# ---------------------------------------------------------------- export

def comparison_rows(comparison: RunComparison) -> list[dict[str, Any]]:
    """One row per case and main metric, the best gain first."""
    return [{"case": c.key, "task": c.task, "metric": METRICS[c.metric].label,
             "run_a": c.run_a, "run_b": c.run_b, "difference": c.run_b - c.run_a,
             "verdict": "better" if c.gain > 0 else "worse" if c.gain < 0 else "same",
             "prompt": c.prompt, "answer_a": c.answer_a, "answer_b": c.answer_b}
            for c in comparison.changes]


def write_comparison(comparison: RunComparison, folder: Path) -> tuple[Path, Path]:
    """comparison.csv and comparison.json in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = folder / "comparison.csv", folder / "comparison.json"
    write_csv(comparison, csv_path)
    write_json(comparison, json_path)
    return csv_path, json_path


def write_csv(comparison: RunComparison, path: Path) -> None:
    """One row per case, the best gain first, safe to open in a spreadsheet."""
    csvsafe.write_rows(path, CSV_COLUMNS, comparison_rows(comparison))


def write_json(comparison: RunComparison, path: Path) -> None:
    """The runs, every metric's paired difference with its interval, and the cases."""
    # "replace": a character that cannot be encoded must not cost the whole file.
    path.write_text(json.dumps(comparison.as_dict(), indent=2, ensure_ascii=False),
                    encoding="utf-8", errors="replace")
