"""`python -m phi4ui compare-runs RUN_A RUN_B [--csv OUT] [--json OUT] [--db PATH]`: two
recorded batch runs over the same cases, paired by case id (see
`phi4ui.evaluation.run_compare`); `--list` shows the recorded runs and their ids.

Exit status: 0 done, 2 for a bad flag, an unknown run or a database that does not exist.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from phi4ui.commands import common
from phi4ui.errors import BadInput
from phi4ui.evaluation.metrics import METRICS
from phi4ui.evaluation.run_compare import (
    CaseChange,
    RunComparison,
    compare_runs,
    list_runs,
    write_csv,
    write_json,
)
from phi4ui.evaluation.store import Store
from phi4ui.settings import load_settings

SHOWN_CASES = 10  # better and worse cases printed; the exports hold them all


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m phi4ui compare-runs", allow_abbrev=False,
        description="Compare two recorded batch runs over the same cases: each metric's "
                    "paired difference (B - A) with a bootstrap 95%% interval, and the cases "
                    "that got better and worse.")
    parser.add_argument("runs", nargs="*", metavar="RUN",
                        help="two run ids (the first 4 or more hex digits): A, then B")
    parser.add_argument("--list", action="store_true", help="list the recorded runs")
    parser.add_argument("--db", type=Path, default=None, help="the record (default: the "
                        "app's --db-path, from PHI4UI_DB_PATH or its default)")
    parser.add_argument("--csv", type=Path, default=None, metavar="OUT",
                        help="also write one row per case to OUT")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT",
                        help="also write the whole comparison as JSON to OUT")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return common.run_command("compare-runs", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    if not args.list and len(args.runs) != 2:
        raise BadInput("give two run ids (A and B), or --list to see them.")
    db = (args.db or Path(load_settings([]).db_path)).expanduser()
    if not db.is_file():
        raise BadInput(f"no database at {db}; pass the app's --db-path as --db.")
    try:
        store = Store(db)
    except sqlite3.Error as error:
        raise BadInput(f"{db}: cannot be read as a phi4ui record ({error}).") from None
    try:
        if args.list:
            _print_runs(store)
            return common.Exit.OK
        comparison = compare_runs(store, args.runs[0], args.runs[1], seed=args.seed)
    finally:
        store.close()
    print("\n".join(report(comparison)))
    for path, write in ((args.csv, write_csv), (args.json, write_json)):
        if path is not None:
            write(comparison, path)
            print(f"written: {path}")
    return common.Exit.OK


def _print_runs(store: Store) -> None:
    runs = list_runs(store)
    if not runs:
        print(f"No batch runs recorded in {store.path}.")
    for run in runs:
        print(run.label)


def report(comparison: RunComparison) -> list[str]:
    """The comparison's figures, then the cases that changed most, each way."""
    lines = comparison.lines()
    for title, changes in (("better in B", comparison.better),
                           ("worse in B", comparison.worse)):
        lines += ["", f"{len(changes)} cases {title}"
                  + (f" (the first {SHOWN_CASES})" if len(changes) > SHOWN_CASES else "")]
        lines += [_case_line(change) for change in changes[:SHOWN_CASES]]
    return lines


def _case_line(change: CaseChange) -> str:
    metric = METRICS[change.metric]
    return (f"  {change.key}: {metric.label} {metric.shown(change.run_a)} -> "
            f"{metric.shown(change.run_b)}  A: {_short(change.answer_a)!r}  "
            f"B: {_short(change.answer_b)!r}")


def _short(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"
