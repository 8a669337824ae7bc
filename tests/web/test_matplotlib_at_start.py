"""Gradio imports matplotlib around every event. The server does that import once while it
starts (before the start-up freeze), or, without matplotlib, makes each later import fail
at once. Each case in a fresh interpreter, where `sys.modules` is the server's alone; the
installed case uses a stand-in package that records what Gradio asks of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAND_IN = '''
calls = []
def get_backend():
    calls.append("get_backend")
    return "agg"
def use(name):
    calls.append(f"use {name}")
'''
AT_START = '''
import sys
from phi4ui.web.server import _lighten_gradio
_lighten_gradio()
module = sys.modules.get("matplotlib", "absent")
print(module if module in (None, "absent") else module.calls)
'''


def at_start(extra_path: Path | None = None) -> str:
    paths = [str(ROOT)] + ([str(extra_path)] if extra_path else [])
    done = subprocess.run([sys.executable, "-c", AT_START], capture_output=True, text=True,
                          env={"PYTHONPATH": ":".join(paths), "PATH": "/usr/bin:/bin",
                               "GRADIO_ANALYTICS_ENABLED": "False"}, timeout=120, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_an_installed_matplotlib_is_imported_as_gradio_does_while_the_server_starts(
        tmp_path: Path) -> None:
    (tmp_path / "matplotlib").mkdir()
    (tmp_path / "matplotlib" / "__init__.py").write_text(STAND_IN)
    assert at_start(tmp_path) == "['get_backend', 'use agg', 'use agg']"


def test_without_matplotlib_its_import_fails_at_once() -> None:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is not None:
        pytest.skip("matplotlib is installed here")
    assert at_start() == "None"
