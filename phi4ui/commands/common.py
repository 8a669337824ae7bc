"""What the commands share: their own flags next to every app flag, logging, and an
engine started from the settings exactly as the app starts it."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import logging
import os
import sys
from collections.abc import Callable

from phi4ui.core.engine import Engine
from phi4ui.errors import BadInput, EngineUnavailable, SettingsError
from phi4ui.settings import Settings, build_parser, flag_name, load_settings


def tool_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser that takes the command's own arguments and every flag of the app."""
    return argparse.ArgumentParser(
        prog=prog, description=description, parents=[build_parser()],
        conflict_handler="resolve", allow_abbrev=False,
        epilog="Engine and record flags are those of `python -m phi4ui serve` "
               "(also as PHI4UI_* variables).",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """The app's settings from the parsed flags; raises `SettingsError` for a bad one."""
    argv: list[str] = []
    for spec in dataclasses.fields(Settings):
        value = getattr(args, spec.name, None)
        if value is not None:
            argv += [flag_name(spec.name), str(value)]
    return load_settings(argv)


def configure_logging(settings: Settings) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    # vLLM sets up its own logging at import, to stdout, where the tools print results.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", settings.log_level.upper())
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def start_engine(settings: Settings) -> Engine:
    """Builds and loads the configured engine; raises `EngineUnavailable` if it fails."""
    from phi4ui.engines import build_engine

    engine = build_engine(settings)
    await engine.start()
    if engine.status.state != "ready":
        await engine.close()
        raise EngineUnavailable(f"The engine did not start: {engine.status.message}")
    return engine


class Exit(enum.IntEnum):
    """Every command's exit codes."""
    OK = 0
    FAILED = 1  # a check failed, or a record did not replay
    BAD_INPUT = 2  # a bad flag, file or bundle; nothing ran
    NO_ENGINE = 3  # the engine did not start


def run_command(name: str, body: Callable[[], int]) -> int:
    """Runs a command's body: a bad flag or input, or an engine that did not start, ends it
    with one line on stderr and its exit code, never a traceback."""
    try:
        return body()
    except (SettingsError, BadInput) as error:
        print(f"phi4ui {name}: {error}", file=sys.stderr)
        return Exit.BAD_INPUT
    except EngineUnavailable as error:
        print(f"phi4ui {name}: {error}", file=sys.stderr)
        return Exit.NO_ENGINE
