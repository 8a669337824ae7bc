"""`python -m phi4ui leaderboard [--db PATH] [--json out.json] [--thumbs]`: the
configurations ranked by the Compare votes in the record (see
`phi4ui.evaluation.leaderboard`), best first, with 95% intervals and vote counts.

Exit status: 0 done (also when there are no votes yet), 2 for a bad flag or a database
that does not exist.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from phi4ui.commands import common
from phi4ui.errors import BadInput
from phi4ui.evaluation.leaderboard import DEFAULT_RESAMPLES, leaderboard, votes_in
from phi4ui.evaluation.store import Store
from phi4ui.settings import load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m phi4ui leaderboard", allow_abbrev=False,
        description="Rank the configurations compared side by side (Bradley–Terry, ties "
                    "count half) with bootstrap 95%% intervals.")
    parser.add_argument("--db", type=Path, default=None, help="the record (default: the "
                        "app's --db-path, from PHI4UI_DB_PATH or its default)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT",
                        help="also write the leaderboard as JSON to OUT")
    parser.add_argument("--thumbs", action="store_true",
                        help="also count an up and a down on answers of two configurations "
                             "to the same conversation as a vote")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                        help=f"bootstrap resamples of the votes (default {DEFAULT_RESAMPLES})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    return parser


def run(db: Path, out: Path | None, *, thumbs: bool, resamples: int, seed: int) -> int:
    if not db.is_file():
        raise BadInput(f"no database at {db}; pass the app's --db-path as --db.")
    if resamples < 1:
        raise BadInput("--resamples: must be at least 1")
    try:
        store = Store(db)
    except sqlite3.Error as error:
        raise BadInput(f"{db}: cannot be read as a phi4ui record ({error}).") from None
    try:
        board = leaderboard(votes_in(store, thumbs=thumbs), resamples=resamples, seed=seed)
    finally:
        store.close()
    print("\n".join(board.lines()))
    if out is not None:
        try:
            out.write_text(json.dumps(board.as_dict(), indent=2, ensure_ascii=False) + "\n")
        except OSError as error:
            raise BadInput(f"--json: cannot write {out} ({error.strerror}).") from None
        print(f"written: {out}")
    return common.Exit.OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return common.run_command("leaderboard", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    db = args.db or Path(load_settings([]).db_path)
    return run(db.expanduser(), args.json, thumbs=args.thumbs, resamples=args.resamples,
               seed=args.seed)
