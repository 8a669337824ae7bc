"""`python -m phi4ui batch CASES --out DIR [app flags]`: evaluation cases through the
engine configured like the app; results.csv and results.json, and each answer recorded."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phi4ui.commands import common
from phi4ui.core.chat import Sampling
from phi4ui.core.figures import exact_seconds
from phi4ui.core.generation_settings import DEFAULT_SYSTEM, PHI4MM_SAMPLING
from phi4ui.errors import SettingsError
from phi4ui.evaluation.batch import (
    BatchOptions,
    CaseResult,
    run_batch,
    write_results,
)
from phi4ui.evaluation.cases import read_cases
from phi4ui.evaluation.replay import ReplayRefused, sampling_of
from phi4ui.evaluation.store import Store


def _parser() -> Any:
    parser = common.tool_parser("python -m phi4ui batch", "Run evaluation cases (JSONL or CSV) "
                                "through the engine; write results.csv and results.json.")
    parser.add_argument("cases", type=Path, help="the case file (.jsonl or .csv)")
    parser.add_argument("--out", type=Path, default=Path("results"),
                        help="folder for results.csv and results.json (default: results)")
    parser.add_argument("--concurrency", type=int, default=4, help="cases at once (default 4)")
    parser.add_argument("--system", default=DEFAULT_SYSTEM, help="system prompt")
    parser.add_argument("--max-tokens", type=int, default=PHI4MM_SAMPLING.max_tokens,
                        help="most answer tokens")
    parser.add_argument("--temperature", type=float, default=PHI4MM_SAMPLING.temperature,
                        help="0 = greedy (default)")
    parser.add_argument("--top-p", type=float, default=PHI4MM_SAMPLING.top_p)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--ignore-eos", action="store_true",
                        help="always generate --max-tokens tokens (for timing runs)")
    return parser


def _sampling(args: Any, max_model_len: int) -> Sampling:
    """The flags' sampling, in the ranges a replay of its records will accept."""
    values = {"temperature": args.temperature, "top_p": args.top_p,
              "max_tokens": args.max_tokens, "seed": args.seed, "ignore_eos": args.ignore_eos}
    try:
        return sampling_of(values, max_model_len,
                           named=lambda field: "--" + field.replace("_", "-"))
    except ReplayRefused as refused:
        raise SettingsError(str(refused)) from None


def _progress(done: int, total: int, result: CaseResult) -> None:
    state = f"error: {result.error}" if result.error else \
        f"ok, first token {exact_seconds(result.stats.ttft_s if result.stats else None)}"
    print(f"[{done}/{total}] case {result.case.position} ({result.case.id}) {state}",
          file=sys.stderr, flush=True)


async def _main(args: Any, options: BatchOptions, settings: Any) -> int:
    case_file = read_cases(args.cases)
    for note in case_file.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{len(case_file.cases)} cases from {args.cases} ({case_file.invalid} invalid); "
          "starting the engine", file=sys.stderr, flush=True)
    store = Store.from_settings(settings)
    engine = await common.start_engine(settings)
    try:
        run = await run_batch(engine, case_file, options, store=store, on_progress=_progress)
    finally:
        await engine.close()
        if store:
            store.close()
    csv_path, json_path = write_results(run, args.out)
    print("\n".join(run.summary.lines()))
    print(f"results: {csv_path} and {json_path}")
    if store:
        print(f"recorded in {store.path} as batch {run.batch_id}; compare it with another "
              f"run of these cases: python -m phi4ui compare-runs OTHER_RUN {run.batch_id[:8]}")
    return common.Exit.OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return common.run_command("batch", lambda: _run(args))


def _run(args: Any) -> int:
    settings = common.settings_from(args)
    common.configure_logging(settings)
    if args.concurrency < 1:
        raise SettingsError("--concurrency: must be at least 1")
    options = BatchOptions(args.system, _sampling(args, settings.max_model_len), args.concurrency)
    return asyncio.run(_main(args, options, settings))
