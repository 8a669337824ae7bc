"""phi4ui's one command line, `python -m phi4ui COMMAND [arguments]`:

    serve        the app (the default; `python app.py` is the same)
    batch        evaluation cases through the engine, results as CSV and JSON
    replay       a reproducibility bundle through the engine
    leaderboard  the configurations ranked by the Compare votes in the record
    compare-runs two recorded batch runs over the same cases, case by case
    check-real   the real model's token counts and adapters against the plan
    tinymodel    build a random-weight Phi-4-multimodal checkpoint
    healthcheck  exit 0 when the app on this machine is ready (for Docker's HEALTHCHECK)

Exit codes, the same for every command: 0 done, 1 a check or a case failed, 2 a bad flag
or input, 3 the engine did not start.

May import: everything in phi4ui. Nothing in phi4ui imports it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# name -> (module under phi4ui.commands, one line of help); imported only when chosen,
# so that `healthcheck` starts in milliseconds and `serve` does not import the batch tool.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "the app (the default)"),
    "batch": ("batch", "evaluation cases through the engine; results.csv and results.json"),
    "replay": ("replay", "a reproducibility bundle through the engine"),
    "leaderboard": ("leaderboard", "the configurations ranked by the Compare votes"),
    "compare-runs": ("compare_runs", "two recorded batch runs, paired by case"),
    "check-real": ("check_real", "the real model's token counts and adapters against the plan"),
    "tinymodel": ("tinymodel", "build a random-weight Phi-4-multimodal checkpoint"),
    "healthcheck": ("healthcheck", "exit 0 when the app on this machine is ready"),
}


def usage() -> str:
    lines = ["usage: python -m phi4ui COMMAND [arguments]   (COMMAND --help for its flags)", "",
             "commands:"]
    lines += [f"  {name:<12} {about}" for name, (_, about) in COMMANDS.items()]
    return "\n".join(lines)


def command(name: str) -> Callable[[Sequence[str] | None], int]:
    module = importlib.import_module(f"phi4ui.commands.{COMMANDS[name][0]}")
    return module.main


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args and not args[0].startswith("-"):
        name, rest = args[0], args[1:]
        if name not in COMMANDS:
            print(f"phi4ui: no command {name!r}\n\n{usage()}", file=sys.stderr)
            return 2
    else:  # flags alone: the app, as `python app.py` takes them
        name, rest = "serve", args
    return command(name)(rest)
