"""`python -m phi4ui compare-runs` as a person runs it: a real process on a real record,
listing runs, comparing two with their exports, and refusing what it cannot use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from phi4ui.commands.common import Exit
from phi4ui.evaluation.store import Store
from tests.support.recorded_runs import record_run, transcripts

ROOT = Path(__file__).resolve().parents[2]


def compare_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phi4ui", "compare-runs", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_command_lists_runs_compares_two_and_writes_the_exports(tmp_path):
    store = Store(tmp_path / "answers.db")
    run_a, run_b = transcripts(12, fixed=(0, 1, 2), broken=(5,))
    first, second = record_run(store, run_a), record_run(store, run_b)
    store.close()
    db = str(tmp_path / "answers.db")

    listed = compare_command("--list", "--db", db)
    assert listed.returncode == Exit.OK, listed.stderr
    assert [line[:8] for line in listed.stdout.splitlines()] == [second[:8], first[:8]]

    out_csv, out_json = tmp_path / "c.csv", tmp_path / "c.json"
    result = compare_command(first[:6], second[:6], "--db", db, "--csv", str(out_csv),
                             "--json", str(out_json))
    assert result.returncode == Exit.OK, result.stderr
    assert "B better on 3 of 12 cases, worse on 1 (lower is better)" in result.stdout
    assert "3 cases better in B" in result.stdout and "1 cases worse in B" in result.stdout
    assert "WER: jiwer, after lowercasing" in result.stdout
    assert len(out_csv.read_text(encoding="utf-8").splitlines()) == 13
    assert json.loads(out_json.read_text(encoding="utf-8"))["matched"] == 12


def test_the_command_refuses_bad_input_with_one_line(tmp_path):
    missing = compare_command("abcd", "ef01", "--db", str(tmp_path / "none.db"))
    assert missing.returncode == Exit.BAD_INPUT and "no database at" in missing.stderr
    Store(tmp_path / "empty.db").close()
    unknown = compare_command("abcd", "ef01", "--db", str(tmp_path / "empty.db"))
    assert unknown.returncode == Exit.BAD_INPUT and "No batch run abcd" in unknown.stderr
    alone = compare_command("abcd", "--db", str(tmp_path / "empty.db"))
    assert alone.returncode == Exit.BAD_INPUT and "give two run ids" in alone.stderr
    for result in (missing, unknown, alone):
        assert "Traceback" not in result.stderr
