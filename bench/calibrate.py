"""The clients' own ceiling: the same client processes against a zero-cost stand-in server
(bench/standin.py), one stand-in process per client process so that the stand-in is not
the limit. What they deliver there, at each people count, is the most any path can be
measured at; the report compares it with the fastest path measured (the headroom), and a
run whose clients had less than `HEADROOM_NEEDED` times that says so.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.paths import Target, run_clients
from bench.procs import Service, free_port, start

HEADROOM_NEEDED = 2.0


@contextlib.contextmanager
def standins(count: int, work: Path, cut_every: int = 0) -> Iterator[list[str]]:
    """`count` stand-in servers, each a process of its own; yields their URLs."""
    services: list[Service] = []
    try:
        for index in range(count):
            port = free_port()
            services.append(start(f"standin-{index}", [
                sys.executable, "-m", "bench.standin", "--port", str(port),
                "--cut-every", str(cut_every)], port, work))
        for service in services:
            service.wait_for("/health", "ready", timeout_s=60)
        yield [service.url for service in services]
    finally:
        for service in services:
            service.stop()


def calibrate(job: dict[str, Any], work: Path, users: list[int],
              output_tokens: int) -> list[dict[str, Any]]:
    """Both clients (page and OpenAI) against the stand-ins, text, at each people count."""
    scenarios = [{"kind": "text", "users": n, "requests_per_user": job.get(
        "calibration_requests", 2), "output_tokens": output_tokens} for n in users]
    results: list[dict[str, Any]] = []
    with standins(int(job.get("client_procs", 1)), work) as urls:
        for client in ("openai", "app"):
            found = run_clients({**job, "urls": urls},
                                Target(client, urls[0], "standin"), f"standin_{client}", work,
                                scenarios)
            results += found["results"]
    return results


def headroom(calibration: list[dict[str, Any]],
             results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per client kind and people count: the clients' ceiling over the fastest tokens per
    second any path reached with that many people (the raw engine included)."""
    rows = []
    for row in calibration:
        same_people = [r for r in results if r["users"] == row["users"] and
                       r.get("aggregate_tok_s") and not r["path"].startswith("standin")]
        fastest = max(same_people, key=lambda r: r["aggregate_tok_s"], default=None)
        ratio = (round(row["aggregate_tok_s"] / fastest["aggregate_tok_s"], 2)
                 if fastest and row.get("aggregate_tok_s") else None)
        rows.append({"client": row["path"].removeprefix("standin_"), "users": row["users"],
                     "ceiling_tok_s": row["aggregate_tok_s"],
                     "client_cpu_max": max(row.get("client_cpu") or [0.0]),
                     "fastest_path": fastest["path"] if fastest else None,
                     "fastest_kind": fastest["kind"] if fastest else None,
                     "fastest_tok_s": fastest["aggregate_tok_s"] if fastest else None,
                     "headroom": ratio,
                     "enough": None if ratio is None else ratio >= HEADROOM_NEEDED})
    return rows
