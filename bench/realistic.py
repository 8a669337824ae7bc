"""The realistic load: people arrive at random (a Poisson process over `ramp_s`), each
sends a few messages with an exponential think time between them, 512-token answers.
The number of people grows step by step until the time to first token's p95 passes
`P95_LIMIT_MS`; the largest step within it is how many people the machine serves well.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from typing import Any

from bench.paths import Setup, Target, run_clients, serving
from bench.workload import Scenario

P95_LIMIT_MS = 1000.0


@dataclass(frozen=True)
class Realistic:
    people: list[int]
    messages: int = 3
    think_s: float = 10.0
    ramp_s: float = 30.0
    output_tokens: int = 512
    kind: str = "text"

    def step(self, people: int) -> Scenario:
        return Scenario(self.kind, people, self.messages, self.output_tokens,
                        arrival_s=self.ramp_s / people, think_s=self.think_s)


def run(job: dict[str, Any], setup: Setup, paths: list[str],
        plan: Realistic) -> dict[str, Any]:
    """Each path started once, its steps one after another; a path that cannot start is
    reported as skipped."""
    found: dict[str, Any] = {"plan": asdict(plan), "steps": [], "skipped": {}}
    for path in paths:
        try:
            with serving(path, setup) as target:
                found["steps"] += _steps(job, setup, path, target, plan)
        except Exception as error:  # noqa: BLE001 - a path that fails is reported, not fatal
            found["skipped"][path] = f"{type(error).__name__}: {error}"
            print(f"realistic {path}: skipped: {error}", file=sys.stderr)
    found["serves_well"] = serves_well(found["steps"])
    return found


def _steps(job: dict[str, Any], setup: Setup, path: str, target: Target,
           plan: Realistic) -> list[dict[str, Any]]:
    steps = []
    for people in plan.people:
        scenario = asdict(plan.step(people))
        result = run_clients(job, target, path, setup.work, [scenario],
                             f"realistic-{path}-{people}")["results"][0]
        steps.append(result)
        if (result["ttft_p95_ms"] or float("inf")) > P95_LIMIT_MS:
            break
    return steps


def serves_well(steps: list[dict[str, Any]]) -> dict[str, int]:
    """Per path: the most people with a first-token p95 within the limit and no errors
    (0 when no step was)."""
    best: dict[str, int] = {}
    for step in steps:
        good = (step["ttft_p95_ms"] is not None and step["ttft_p95_ms"] <= P95_LIMIT_MS
                and step["errors"] == 0)
        best[step["path"]] = max(best.get(step["path"], 0), step["users"] if good else 0)
    return best
