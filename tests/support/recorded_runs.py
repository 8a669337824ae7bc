"""Batch runs written into a real store through its own API, as a batch run records them,
without an engine: for tests of what is done with recorded runs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from phi4ui.evaluation.rows import BatchCaseRow
from phi4ui.evaluation.store import Store
from tests.support.evalhelpers import record_for


@dataclass(frozen=True)
class Planted:
    case_id: str
    expected: str
    answer: str | None  # None: the case failed
    task: str = ""
    tags: tuple[str, ...] = ()


def record_run(store: Store, cases: Sequence[Planted], source: str = "cases.jsonl") -> str:
    """Records one finished batch run of `cases`; returns its id."""
    batch_id = uuid.uuid4().hex
    store.start_batch(batch_id, source, len(cases), {"concurrency": 4})
    for position, case in enumerate(cases, 1):
        row = BatchCaseRow(position, case.case_id, f"Case {case.case_id}", case.expected,
                           case.tags, None if case.answer is not None else "engine error",
                           task=case.task)
        record = (record_for(f"Case {case.case_id}", answer=case.answer, origin="batch")
                  if case.answer is not None else None)
        store.add_batch_case(batch_id, row, record)
    store.finish_batch(batch_id, {"cases": len(cases)})
    return batch_id


SENTENCE = "the quick brown fox jumps over the lazy dog today"


def transcripts(count: int, *, fixed: Sequence[int] = (), broken: Sequence[int] = ()
                ) -> tuple[list[Planted], list[Planted]]:
    """Two runs of `count` transcription cases: run A gets two words of ten wrong on every
    case; run B gets the cases in `fixed` right and three words wrong in `broken`."""
    two_wrong = SENTENCE.replace("quick", "quack").replace("lazy", "hazy")
    three_wrong = two_wrong.replace("today", "tonight")
    run_a = [Planted(f"t{i}", SENTENCE, two_wrong, task="transcription") for i in range(count)]
    run_b = [Planted(f"t{i}", SENTENCE,
                     SENTENCE if i in fixed else three_wrong if i in broken else two_wrong,
                     task="transcription") for i in range(count)]
    return run_a, run_b
