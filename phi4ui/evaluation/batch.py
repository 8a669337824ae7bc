"""Batch evaluation: many cases through the engine at once, each recorded as it finishes.

    python -m phi4ui batch cases.jsonl --out results/ --concurrency 16 [app.py flags]

`concurrency` workers take cases in turn (the engine batches what runs at
once). A case that fails gets its error in the results and the run goes on.
With recording on, every finished case is committed to the database on its
own, so a run killed half-way keeps the cases it finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phi4ui.core import answer_stream, figures
from phi4ui.core.chat import ChatRequest, Sampling
from phi4ui.core.engine import Engine
from phi4ui.core.generation_settings import DEFAULT_SYSTEM
from phi4ui.core.merged import merged
from phi4ui.core.stats import RequestStats, percentile
from phi4ui.errors import Phi4UIError
from phi4ui.evaluation import csvsafe
from phi4ui.evaluation.cases import Case, CaseFile
from phi4ui.evaluation.metric_summary import MetricLine, metric_lines, summarize_metrics
from phi4ui.evaluation.metrics import METRICS, CaseScores, resolve_task, score_case
from phi4ui.evaluation.recording import build_record
from phi4ui.evaluation.store import BatchCaseRow, Store

log = logging.getLogger(__name__)
COLUMNS = ("case", "id", "prompt", "images", "audios", "expected", "tags", "answer", "error",
           "expected_found", "ttft_s", "tokens_per_s", "e2e_s", "prompt_tokens",
           "completion_tokens", "finish_reason", "adapter", "answer_id", "task",
           *METRICS)


@dataclass(frozen=True)
class BatchOptions:
    system: str = DEFAULT_SYSTEM
    sampling: Sampling = field(default_factory=Sampling)
    concurrency: int = 4
    user: str = ""  # the login name of whoever ran it, kept on each record

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CaseResult:
    case: Case
    answer: str = ""
    error: str | None = None
    stats: RequestStats | None = None
    answer_id: str | None = None
    request: ChatRequest | None = field(default=None, repr=False)

    @property
    def expected_found(self) -> bool | None:
        """Whether an expected answer occurs in the answer (case and spacing ignored)."""
        if not self.case.expected_answers or self.error:
            return None
        return any(_normal(text) in _normal(self.answer) for text in self.case.expected_answers)

    @functools.cached_property
    def scores(self) -> CaseScores | None:
        """The task metrics of an answered case (see `phi4ui.evaluation.metrics`)."""
        if self.error:
            return None
        case = self.case
        return score_case(resolve_task(case.task, case.tags), self.answer,
                          case.expected_answers, case.pattern)

    def row(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "case": self.case.position, "id": self.case.id, "prompt": self.case.prompt,
            "images": "; ".join(self.case.images), "audios": "; ".join(self.case.audios),
            "expected": "; ".join(self.case.expected_answers), "tags": "; ".join(self.case.tags),
            "answer": self.answer, "error": self.error or "",
            "expected_found": self.expected_found,
            "ttft_s": stats.ttft_s if stats else None,
            "tokens_per_s": stats.decode_tokens_per_s if stats else None,
            "e2e_s": stats.e2e_s if stats else None,
            "prompt_tokens": stats.prompt_tokens if stats else None,
            "completion_tokens": stats.completion_tokens if stats else None,
            "finish_reason": stats.finish_reason if stats else "",
            "adapter": stats.adapter if stats else "", "answer_id": self.answer_id or "",
            "task": resolve_task(self.case.task, self.case.tags),
            **{name: self.scores.values.get(name) if self.scores else None for name in METRICS},
        }


@dataclass(frozen=True)
class Summary:
    cases: int
    answered: int
    errors: int
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    tokens_per_s_p50: float | None
    completion_tokens: int
    wall_s: float
    output_tokens_per_s: float | None  # all answers together, over the run's wall time
    expected_checked: int
    expected_found: int
    metrics: tuple[MetricLine, ...] = ()  # task metrics with their intervals

    def lines(self) -> list[str]:
        lines = [f"cases {self.cases}: {self.answered} answered, {self.errors} errors",
                 f"time to first token p50 {figures.exact_seconds(self.ttft_p50_s)}, "
                 f"p95 {figures.exact_seconds(self.ttft_p95_s)}",
                 f"decode speed p50 {figures.rate(self.tokens_per_s_p50)} per answer; "
                 f"{self.completion_tokens} tokens in {self.wall_s:.1f} s = "
                 f"{figures.rate(self.output_tokens_per_s)} overall"]
        if self.expected_checked:
            lines.append(f"expected answer found in {self.expected_found} of "
                         f"{self.expected_checked}")
        return lines + metric_lines(self.metrics)


@dataclass(frozen=True)
class BatchRun:
    batch_id: str
    source: str
    options: BatchOptions
    results: list[CaseResult]
    summary: Summary
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------- running

async def run_case(engine: Engine, case: Case, options: BatchOptions) -> CaseResult:
    if case.error:
        return CaseResult(case, error=case.error)
    try:
        message = {"text": case.prompt, "files": list(case.files)}
        request = await answer_stream.plan(engine, [], message, options.system, options.sampling)
        final = await answer_stream.final_update(engine, request)
    except Phi4UIError as error:
        return CaseResult(case, error=f"{case.where}: {error}")
    except Exception as error:
        log.exception("batch case %s (%s) failed", case.position, case.where)
        return CaseResult(case, error=_internal(case, error))
    if final is None or final.stats is None:
        return CaseResult(case, error=f"{case.where}: the engine ended without an answer")
    return CaseResult(case, answer=final.text, stats=final.stats, request=request)


def _internal(case: Case, error: BaseException) -> str:
    return (f"{case.where}: internal error ({type(error).__name__}: {error}); see the app's "
            "log")


def _record(store: Store, batch_id: str, engine: Engine, result: CaseResult,
            user: str) -> CaseResult:
    case = result.case
    try:
        row = BatchCaseRow(case.position, case.id, case.prompt, case.expected, case.tags,
                           result.error, also_expected=case.also_expected,
                           task=resolve_task(case.task, case.tags), pattern=case.pattern)
        answer = None
        if result.request is not None and result.stats is not None:
            answer = build_record(result.request, result.answer, result.stats, engine.info,
                                  origin="batch", user=user)
        recorded = store.add_batch_case(batch_id, row, answer)
    except Exception as error:
        log.exception("recording batch case %s failed", case.position)
        return CaseResult(case, result.answer, f"{case.where}: answered but not recorded "
                          f"({error})", result.stats, None, result.request)
    if recorded is None:
        return result
    return CaseResult(case, result.answer, result.error, result.stats, recorded.answer_id,
                      result.request)


async def stream_batch(engine: Engine, cases: Sequence[Case], options: BatchOptions, *,
                       store: Store | None = None, batch_id: str = "",
                       ) -> AsyncIterator[CaseResult]:
    """Results in the order they finish. Stopping the iteration stops the run: answers in
    flight are aborted, finished ones stay recorded."""
    pending = iter(cases)

    async def one(case: Case) -> CaseResult:
        try:
            result = await run_case(engine, case, options)
            if store is not None:
                result = await asyncio.to_thread(_record, store, batch_id, engine, result,
                                                 options.user)
        except Exception as error:  # one case never ends the run
            log.exception("batch case %s (%s) failed", case.position, case.where)
            return CaseResult(case, error=_internal(case, error))
        return result

    async def worker() -> AsyncIterator[CaseResult]:
        for case in pending:
            yield await one(case)

    workers = [worker() for _ in range(max(1, options.concurrency))]
    async with contextlib.aclosing(merged(workers)) as results:
        async for result in results:
            yield result


@dataclass(frozen=True)
class Progress:
    """After each case: how far the run is; the last one also carries the whole run."""

    done: int
    total: int
    result: CaseResult | None = None
    run: BatchRun | None = None


async def iter_batch(engine: Engine, case_file: CaseFile, options: BatchOptions, *,
                     store: Store | None = None) -> AsyncIterator[Progress]:
    """Runs every case, yielding after each one and, at the end, the finished run.
    Stopping the iteration stops the run; the cases done stay recorded."""
    batch_id = uuid.uuid4().hex
    source = case_file.source or str(case_file.path)
    cases = case_file.cases
    if store is not None:
        await asyncio.to_thread(store.start_batch, batch_id, source, len(cases),
                                options.as_dict())
    started = time.perf_counter()
    results: list[CaseResult] = []
    async for result in stream_batch(engine, cases, options, store=store, batch_id=batch_id):
        results.append(result)
        yield Progress(len(results), len(cases), result)
    results.sort(key=lambda r: r.case.position)
    summary = summarize(results, time.perf_counter() - started)
    notes = case_file.notes
    if store is not None:
        try:
            await asyncio.to_thread(store.finish_batch, batch_id, asdict(summary))
        except Exception as error:
            log.exception("recording the end of batch %s failed", batch_id)
            notes += (f"the cases are recorded, but not the run's summary ({error})",)
    yield Progress(len(results), len(cases),
                   run=BatchRun(batch_id, source, options, results, summary, notes))


async def run_batch(engine: Engine, case_file: CaseFile, options: BatchOptions, *,
                    store: Store | None = None,
                    on_progress: Callable[[int, int, CaseResult], None] | None = None,
                    ) -> BatchRun:
    """Runs every case; `on_progress(done, total, result)` after each one."""
    async for progress in iter_batch(engine, case_file, options, store=store):
        if progress.run is not None:
            return progress.run
        if on_progress and progress.result is not None:
            on_progress(progress.done, progress.total, progress.result)
    raise AssertionError("iter_batch ends with the run")


def summarize(results: Sequence[CaseResult], wall_s: float) -> Summary:
    stats = [r.stats for r in results if r.stats is not None and not r.error]
    ttfts = [s.ttft_s for s in stats if s.ttft_s is not None]
    rates = [s.decode_tokens_per_s for s in stats if s.decode_tokens_per_s is not None]
    tokens = sum(s.completion_tokens for s in stats)
    checked = [r.expected_found for r in results if r.expected_found is not None]
    return Summary(
        cases=len(results), answered=len(stats), errors=sum(r.error is not None for r in results),
        ttft_p50_s=percentile(ttfts, 50), ttft_p95_s=percentile(ttfts, 95),
        tokens_per_s_p50=percentile(rates, 50), completion_tokens=tokens, wall_s=wall_s,
        output_tokens_per_s=tokens / wall_s if wall_s > 0 and tokens else None,
        expected_checked=len(checked), expected_found=sum(checked),
        metrics=summarize_metrics((r.scores, r.case.tags) for r in results if r.scores),
    )


# ---------------------------------------------------------------- output

def write_results(run: BatchRun, folder: Path) -> tuple[Path, Path]:
    """results.csv (one row per case, safe to open in a spreadsheet) and results.json (the
    summary, options and rows with every statistic)."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = folder / "results.csv", folder / "results.json"
    csvsafe.write_rows(csv_path, COLUMNS, (r.row() for r in run.results))
    document = {
        "batch_id": run.batch_id, "source": run.source, "options": run.options.as_dict(),
        "summary": asdict(run.summary), "notes": list(run.notes),
        "results": [{**r.row(), "stats": r.stats.as_dict() if r.stats else None}
                    for r in run.results],
    }
    # "replace": a character that cannot be encoded must not cost the whole file.
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8",
                         errors="replace")
    return csv_path, json_path


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())
