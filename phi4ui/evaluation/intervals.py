"""Bootstrap confidence intervals: how sure a figure is, given the cases behind it.

    bootstrap_ci([0.1, 0.3, 0.2, ...])                  # mean with its 95% interval
    bootstrap_ci(rows, statistic=my_fit)                 # any statistic over resampled rows
    paired_bootstrap_ci(before, after)                   # mean of (after - before), paired

The percentile bootstrap: the values (or the rows of a 2-D array) are drawn with
replacement `n` times, the statistic is taken on each draw, and the interval is
the middle `level` share of those statistics. With a fixed `seed` the same
values always give the same interval. Fewer than two values give an interval of
zero width at the estimate (nothing to resample); no values give no estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Statistic = Callable[[np.ndarray[Any, Any]], float]
DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    estimate: float | None  # the statistic on all the values
    low: float | None
    high: float | None
    count: int  # how many values (cases, votes) it rests on
    level: float = DEFAULT_LEVEL

    def covers(self, value: float) -> bool:
        return self.low is not None and self.high is not None and self.low <= value <= self.high

    def as_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high,
                "count": self.count, "level": self.level}


def mean(values: np.ndarray[Any, Any]) -> float:
    return float(np.mean(values))


def bootstrap_ci(values: Sequence[Any] | np.ndarray[Any, Any], statistic: Statistic = mean, *,
                 n: int = DEFAULT_RESAMPLES, seed: int = 0,
                 level: float = DEFAULT_LEVEL) -> Interval:
    """`statistic` over `values` with its percentile-bootstrap interval. `values` may be
    numbers or a 2-D array whose rows are drawn whole (a vote, a pair of scores)."""
    data = np.asarray(values, dtype=float)
    count = len(data)
    if count == 0:
        return Interval(None, None, None, 0, level)
    estimate = statistic(data)
    if count < 2:
        return Interval(estimate, estimate, estimate, count, level)
    draws = np.random.default_rng(seed).integers(0, count, size=(n, count))
    if statistic is mean and data.ndim == 1:
        stats = data[draws].mean(axis=1)  # all draws at once; the same numbers as the loop
    else:
        stats = np.array([statistic(data[rows]) for rows in draws])
    return _interval(estimate, stats, count, level)


def paired_bootstrap_ci(before: Sequence[float], after: Sequence[float],
                        statistic: Statistic = mean, *, n: int = DEFAULT_RESAMPLES,
                        seed: int = 0, level: float = DEFAULT_LEVEL) -> Interval:
    """`statistic(after) - statistic(before)` over pairs (the same case under two runs),
    each draw taking both values of a pair together."""
    if len(before) != len(after):
        raise ValueError(f"paired values differ in number: {len(before)} and {len(after)}")
    pairs = np.column_stack([np.asarray(before, dtype=float), np.asarray(after, dtype=float)])

    def difference(rows: np.ndarray[Any, Any]) -> float:
        return statistic(rows[:, 1]) - statistic(rows[:, 0])

    if statistic is mean:  # the mean difference is the mean of the differences: vectorised
        return bootstrap_ci(pairs[:, 1] - pairs[:, 0], mean, n=n, seed=seed, level=level)
    return bootstrap_ci(pairs, difference, n=n, seed=seed, level=level)


def _interval(estimate: float, stats: np.ndarray[Any, Any], count: int,
              level: float) -> Interval:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high), count, level)
