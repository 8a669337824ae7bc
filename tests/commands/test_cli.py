"""`python -m phi4ui`: one command line for every tool, with the same exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.procs import free_port
from phi4ui.commands import COMMANDS
from phi4ui.commands.common import Exit

ROOT = Path(__file__).resolve().parents[2]


def phi4ui(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phi4ui", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_help_lists_every_command() -> None:
    result = phi4ui("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert f"  {name} " in result.stdout


def test_an_unknown_command_is_refused_with_the_list() -> None:
    result = phi4ui("serv")
    assert result.returncode == Exit.BAD_INPUT
    assert "no command 'serv'" in result.stderr and "check-real" in result.stderr


@pytest.mark.parametrize("command", ["serve", "batch", "replay", "check-real", "tinymodel"])
def test_each_command_has_its_own_help(command: str) -> None:
    result = phi4ui(command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"python -m phi4ui {command}" in result.stdout or command == "serve"


@pytest.mark.parametrize("command", [["batch", "cases.jsonl"], ["replay", "bundle.zip"],
                                     ["check-real"]])
def test_a_bad_flag_exits_2_with_one_line_and_no_engine(command: list[str]) -> None:
    result = phi4ui(*command, "--port", "0")
    assert result.returncode == Exit.BAD_INPUT, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"phi4ui {command[0]}: --port: must be a TCP port, 1 to 65535, got '0'"]


def test_flags_alone_start_the_app_as_app_py_does() -> None:
    result = phi4ui("--port", "0")
    assert result.returncode == Exit.BAD_INPUT
    assert result.stderr.strip() == "phi4ui: --port: must be a TCP port, 1 to 65535, got '0'"


def test_healthcheck_fails_when_nothing_listens() -> None:
    port = free_port()
    result = phi4ui("healthcheck", env={"PATH": "/usr/bin:/bin", "PHI4UI_PORT": str(port)})
    assert result.returncode == 1
    assert "not ready" in result.stderr
