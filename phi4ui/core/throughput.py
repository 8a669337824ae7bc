"""Tokens per second over the last minutes, from successive engine snapshots.

The engine reports a running total of generated tokens; the rate between two
snapshots is the difference over the time between them. One history serves the
whole page: every open tab's timer feeds it, and samples closer together than
`min_interval_s` are ignored so that more tabs do not make the line noisier.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    at: float  # seconds, wall clock
    total: int


class ThroughputHistory:
    def __init__(self, window_s: float = 300.0, min_interval_s: float = 1.0) -> None:
        self.window_s = window_s
        self.min_interval_s = min_interval_s
        self._samples: deque[Sample] = deque()

    def observe(self, total: int | None, at: float) -> None:
        """Records the engine's generated-token total at time `at` (None: not reported)."""
        if total is None:
            return
        if self._samples:
            last = self._samples[-1]
            if total < last.total:  # the engine restarted: its counter did too
                self._samples.clear()
            elif at - last.at < self.min_interval_s:
                return
        self._samples.append(Sample(at, total))
        while self._samples and at - self._samples[0].at > self.window_s:
            self._samples.popleft()

    def rates(self, now: float) -> list[tuple[float, float]]:
        """(seconds relative to `now`, tokens per second) for each interval in the window."""
        points = []
        for before, after in itertools.pairwise(self._samples):
            if now - after.at > self.window_s:
                continue
            span = after.at - before.at
            points.append((after.at - now, (after.total - before.total) / span))
        return points

    def latest(self) -> float | None:
        """The rate over the newest interval, or None before two samples."""
        if len(self._samples) < 2:
            return None
        before, after = self._samples[-2], self._samples[-1]
        return (after.total - before.total) / (after.at - before.at)
