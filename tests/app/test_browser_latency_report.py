"""The browser comparison's accounting: whose CPU a round used (real processes read from
/proc), and how the report sums it up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench import latency_report, round_cpu

BURN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"


def test_each_process_is_grouped_by_what_it_is_for_the_round() -> None:
    pages = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
             for _ in range(2)]
    try:
        pids = {"phi4ui": pages[0].pid, "minimal": pages[1].pid}
        taken = round_cpu.snapshot(pids, "phi4ui")
    finally:
        for page in pages:
            page.kill()
            page.wait()
    assert taken[pages[0].pid][0] == "this page"
    assert taken[pages[1].pid][0] == "other pages"
    assert taken[os.getpid()][0] == "benchmark"


def test_the_cpu_of_a_live_page_is_counted_to_it() -> None:
    page = subprocess.Popen([sys.executable, "-c", BURN + "time.sleep(5)\n"])
    try:
        pids = {"phi4ui": page.pid}
        before = round_cpu.snapshot(pids, "phi4ui")
        subprocess.run([sys.executable, "-c", "import time; time.sleep(1.5)"], check=True)
        used = round_cpu.used(before, round_cpu.snapshot(pids, "phi4ui"))
    finally:
        page.kill()
        page.wait()
    assert used["this page"] >= 0.2
    assert used["other pages"] == 0.0


def test_the_report_gives_each_pages_median_cpu_per_round(tmp_path: Path) -> None:
    def result(page: str, number: int, mine: float) -> dict[str, object]:
        cpu = dict.fromkeys(round_cpu.GROUPS, 0.0) | {"this page": mine, "browser": 1.0}
        return {"round": number, "page": page, "first_ms": 100.0, "last_ms": 900.0,
                "done_ms": 950.0, "requests": [], "tokens": 64, "cpu_s": cpu}

    rounds = [result("minimal", n, 0.1 * (n + 1)) for n in range(3)] + [
        result("phi4ui", n, 0.2 * (n + 1)) for n in range(3)]
    run = {"label": "test", "commit": "abc", "measured_at": "now", "machine": "here",
           "load_average": {"before": [1.0], "after": [1.0]}, "baseline": "", "rounds": rounds}
    latency_report.save(tmp_path, run)
    text = (tmp_path / "browser-latency.md").read_text()
    assert "| phi4ui | 1.00 | 0.40 |" in text  # browser, this page (median of 0.2, 0.4, 0.6)
    assert "| minimal | 1.00 | 0.20 |" in text
