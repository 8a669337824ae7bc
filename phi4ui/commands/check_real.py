"""`python -m phi4ui check-real [app flags]`: the real model's token counts and adapters
against the plan (see `phi4ui.engines.check_real`)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import replace

from phi4ui.commands import common
from phi4ui.engines import check_real as checks
from phi4ui.errors import Phi4UIError


def parser() -> argparse.ArgumentParser:
    tool = common.tool_parser("python -m phi4ui check-real", checks.__doc__.split("\n\n")[0])
    tool.add_argument("--plan-dynamic-hd", type=int, default=None,
                      help="plan images with this dynamic_hd instead of the engine's "
                           "(a deliberate mismatch, to see the check fail)")
    # The check is for the real weights: unlike the app, never swap in the tiny model.
    tool.set_defaults(weights="real")
    return tool


async def check_real(args: argparse.Namespace) -> int:
    settings = common.settings_from(args)
    common.configure_logging(replace(settings, log_level="warning"))
    try:
        engine = await common.start_engine(settings)
    except Phi4UIError as error:
        print(f"FAILED to start: {error}")
        return common.Exit.NO_ENGINE
    try:
        for line in checks.header(engine, args.plan_dynamic_hd):
            print(line)
        outcomes = await checks.check(engine, args.plan_dynamic_hd)
    finally:
        await engine.close()
    for outcome in outcomes:
        print(outcome.line())
    failed = [outcome for outcome in outcomes if outcome.problems]
    if failed:
        print(f"FAILED: {len(failed)} of {len(outcomes)} requests differ from the plan "
              f"({', '.join(o.name for o in failed)})")
        return common.Exit.FAILED
    print(f"PASSED: all {len(outcomes)} requests counted as planned, with the planned adapters")
    return common.Exit.OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return common.run_command("check-real", lambda: asyncio.run(check_real(args)))

