"""A replayed record in one line, as the replay command and the page show it."""

from __future__ import annotations

from phi4ui.evaluation.bundle import ReplayMismatch, ReplayOutcome, ReplayResult


def describe(result: ReplayOutcome) -> str:
    if isinstance(result, ReplayMismatch):
        return f"MISMATCH {result}"
    if not isinstance(result, ReplayResult):
        return f"REFUSED {result}"
    original, stats = result.original, result.stats
    media = len(original.media)
    same = "same answer" if result.same_answer else "different answer"
    not_recorded = f"; not recorded: {result.not_recorded}" if result.not_recorded else ""
    return (f"ok {original.id}: same prompt, same media ({media} file(s)); {same}; "
            f"{stats.summary()}{not_recorded}")
