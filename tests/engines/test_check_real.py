"""`python -m phi4ui check-real` on the tiny checkpoint: it passes where planning and the
engine agree, and a deliberately wrong dynamic_hd makes it fail with a line that says so.

The command runs in a subprocess with an engine of its own, as a person would run it; the
failing check runs on the tests' engine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from phi4ui.core.images import image_token_count
from phi4ui.engines.check_real import CASES, IMAGE_SIZE, check
from tests.conftest import TEST_DYNAMIC_HD

pytestmark = pytest.mark.engine
LINE = re.compile(r"^(?P<name>\S+)\s+planned\s+(?P<planned>[\d,]+)\s+engine\s+(?P<counted>[\d,]+)"
                  r"\s+adapter (?P<adapter>\S+) \(ran: (?P<ran>[^)]*)\)\s+(?P<verdict>.*)$")


def run_check(checkpoint: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "phi4ui", "check-real", "--model", str(checkpoint),
               "--max-model-len", "4096", "--max-images", "2", "--max-audios", "2",
               "--cpu-kv-cache-gib", "1", *extra]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env=environment, check=False)


def report(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    return report_of(result.stdout.splitlines())


def report_of(lines: list[str]) -> dict[str, dict[str, str]]:
    found = (LINE.match(line) for line in lines)
    return {match["name"]: match.groupdict() for match in found if match}


def test_passes_on_the_tiny_checkpoint(checkpoint):
    result = run_check(checkpoint)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = report(result)
    assert set(lines) == set(CASES)
    for name, (_, _, adapter) in CASES.items():
        line = lines[name]
        assert line["planned"] == line["counted"] and line["verdict"] == "OK", line
        assert line["adapter"] == line["ran"] == (adapter or "none"), line
    assert f"dynamic_hd {TEST_DYNAMIC_HD}" in result.stdout
    assert "PASSED: all 4 requests counted as planned" in result.stdout


def test_a_wrong_dynamic_hd_fails_with_a_clear_line(embedded_engine, engine_loop):
    """The check itself, on the tests' engine (a second engine start would cost minutes)."""
    outcomes = {o.name: o for o in engine_loop.run(check(embedded_engine, plan_dynamic_hd=16))}
    lines = report_of([o.line() for o in outcomes.values()])
    wrong = image_token_count(*IMAGE_SIZE, dynamic_hd=16)
    right = image_token_count(*IMAGE_SIZE, dynamic_hd=TEST_DYNAMIC_HD)
    for name in ("image", "image+audio"):
        planned = int(lines[name]["planned"].replace(",", ""))
        counted = int(lines[name]["counted"].replace(",", ""))
        assert planned - counted == wrong - right != 0
        assert lines[name]["verdict"] == (f"MISMATCH: planned {planned:,} prompt tokens, the "
                                          f"engine counted {counted:,}")
    assert lines["text"]["verdict"] == lines["audio"]["verdict"] == "OK"


def test_passes_against_a_remote_server(checkpoint, vllm_server):
    # The shared server is started as the model card starts the real model: the tiling
    # comes from the checkpoint.
    assert vllm_server.dynamic_hd is None
    result = run_check(checkpoint, "--engine", "remote", "--base-url", vllm_server.base_url)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = report(result)
    assert all(line["verdict"] == "OK" and line["planned"] == line["counted"]
               for line in lines.values()) and set(lines) == set(CASES)
    assert f"dynamic_hd {TEST_DYNAMIC_HD} (measured on the server ({TEST_DYNAMIC_HD}))" in (
        result.stdout)
