"""The benchmark in a tiny configuration, so that it cannot rot."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine
ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_a_report_with_ratios(tmp_path):
    subprocess.run([sys.executable, "-m", "bench", "--quick", "--paths", "raw,app",
                    "--client-procs", "2", "--raw-pause-ms", "50", "--out", str(tmp_path)],
                   cwd=ROOT, check=True, timeout=900, capture_output=True)
    run = json.loads((tmp_path / "benchmark.json").read_text())
    paths = {(r["path"], r["users"]) for r in run["results"]}
    assert paths == {("raw", 1), ("raw", 4), ("raw_paced", 1), ("raw_paced", 4), ("app", 1),
                     ("app", 4)}
    # The raw engine's people also ran pausing before each answer, as a page's steps keep
    # them away; the page is compared with that too.
    by_path = {(r["path"], r["users"]): r for r in run["results"]}
    assert by_path[("raw_paced", 4)]["total_output_tokens"] == by_path[("raw", 4)][
        "total_output_tokens"]
    assert "| app vs raw_paced | text | 4 |" in (tmp_path / "benchmark.md").read_text()
    # Every answer was a full one: the page's ended with its statistics, all tokens counted.
    assert all(r["errors"] == 0 and r["ttft_p50_ms"] > 0 for r in run["results"])
    assert all(r["total_output_tokens"] <= r["requests"] * 16 for r in run["results"])
    # Each person has at most one answer at the engine at a time.
    assert all(0 < r["in_engine_mean"] <= r["users"] + 0.05 for r in run["results"])
    # The page's steps around each answer were timed; the raw engine has none.
    for r in run["results"]:
        steps = r.get("page_steps_p50_ms", {})
        if r["path"] == "app":
            # One step sends the message and streams its answer: no accept step before it,
            # no finishing step after it.
            assert set(steps) == {"clear", "answer start"}
            assert steps["clear"] > 0 and steps["answer start"] > 0
        else:
            assert not steps
    assert "The page's steps per message" in (tmp_path / "benchmark.md").read_text()
    # Each answer's time per token on the engine core's clock, for both; as the page process
    # received the tokens, for the page only. On two busy cores a starved client may get an
    # answer in one burst, so the clocks are not ordered; but no answer's engine span is
    # longer than the client waited for the whole answer.
    for r in run["results"]:
        assert r["answer_gap_engine_p50_ms"] > 0 and r["answer_gap_client_p50_ms"] >= 0
        assert r["engine_spans_past_wait"] == 0
        if r["path"] == "app":
            assert r["answer_gap_page_p50_ms"] > 0
        else:
            assert "answer_gap_page_p50_ms" not in r
    assert "Each answer's mean time per token" in (tmp_path / "benchmark.md").read_text()
    assert all(len(r["client_cpu"]) == 2 for r in run["results"] if r["path"] == "app")
    # The whole machine's CPU while the people ran: the page and its engine worked, and
    # the machine was busy at least as long as they were.
    four = next(r["machine_cpu"] for r in run["results"] if r["path"] == "app" and r["users"] == 4)
    assert four["by_kind"]["page"] > 0 and four["by_kind"]["engine core"] > 0
    assert four["busy_cores"] >= 0.5 * (four["by_kind"]["page"] + four["by_kind"]["engine core"])
    raw = next(r["machine_cpu"] for r in run["results"] if r["path"] == "raw" and r["users"] == 4)
    assert raw["by_kind"]["raw caller"] > 0 and raw["by_kind"]["engine core"] > 0
    assert "page" not in raw["by_kind"]
    assert run["media_prep"]["photo_12mp"]["p50_ms"] > 0
    assert run["app_start"]["page_s"] < run["app_start"]["engine_ready_s"]
    table = (tmp_path / "benchmark.md").read_text()
    assert "app vs raw" in table and "tok/s ratio" in table and "Side by side" in table
    assert "The machine's CPU while the people ran" in table
