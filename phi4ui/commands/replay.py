"""Replay a reproducibility bundle through the engine configured like the app:

    python -m phi4ui replay bundle.zip [--only ID] [engine flags, as for app.py]

Exit status: 0 when every record's prompt and media matched and it ran, 1 when
one did not match or was refused (its settings, the engine), 2 for a bad bundle or
flag, 3 when the engine did not start. The last line sums up the records.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from phi4ui.commands import common
from phi4ui.errors import BadInput
from phi4ui.evaluation import replay, staging
from phi4ui.evaluation.bundle import Bundle, read_bundle
from phi4ui.evaluation.replay import ReplayResult, replay_bundle, replay_summary
from phi4ui.evaluation.store import Store
from phi4ui.settings import Settings


async def run(bundle_path: Path, settings: Settings, only: str | None) -> int:
    with staging.job_folder("replay") as folder:
        bundle = read_bundle(bundle_path, folder)
        if only:
            bundle = Bundle([r for r in bundle.records if r.id.startswith(only)], bundle.folder)
            if not bundle.records:
                raise BadInput(f"{bundle_path.name}: no record id starts with {only!r}.")
        print(f"Replaying {len(bundle.records)} record(s) from {bundle_path}", flush=True)
        engine = await common.start_engine(settings)
        store = Store.from_settings(settings)
        try:
            results = await replay_bundle(engine, bundle, store=store,
                                          on_result=lambda r: print(replay.describe(r), flush=True))
        finally:
            await engine.close()
            if store:
                store.close()
    print(replay_summary(results), flush=True)
    replayed = all(isinstance(r, ReplayResult) for r in results)
    return common.Exit.OK if replayed else common.Exit.FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.tool_parser("python -m phi4ui replay", "Replay a phi4ui bundle: the same "
                                "prompt and media through the current engine.")
    parser.add_argument("bundle", type=Path, help="a bundle zip exported from the page")
    parser.add_argument("--only", metavar="ID", help="replay only the record whose id "
                        "starts with ID")
    args = parser.parse_args(argv)
    return common.run_command("replay", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    settings = common.settings_from(args)
    common.configure_logging(settings)
    return asyncio.run(run(args.bundle, settings, args.only))
