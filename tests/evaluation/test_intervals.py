"""Bootstrap intervals on synthetic data whose true value is known: they cover it at about
the stated rate, pair values by case, and stay the same for the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from phi4ui.evaluation.intervals import Interval, bootstrap_ci, paired_bootstrap_ci

REPETITIONS = 400  # coverage is counted over this many synthetic samples


def coverage(make_interval, true_value: float) -> float:
    hits = sum(make_interval(np.random.default_rng(seed)).covers(true_value)
               for seed in range(REPETITIONS))
    return hits / REPETITIONS


def test_the_interval_of_a_mean_covers_the_true_mean_about_95_percent_of_the_time():
    def interval(rng):  # 60 per-case error rates around a true mean of 0.08
        return bootstrap_ci(rng.beta(2, 23, size=60), n=1000, seed=int(rng.integers(1 << 30)))

    assert 0.91 <= coverage(interval, 2 / 25) <= 0.98


def test_the_paired_interval_covers_the_true_difference_and_uses_the_pairing():
    def interval(rng):  # cases differ a lot between themselves, runs only a little
        difficulty = rng.normal(0.5, 0.3, size=50)
        before = difficulty + rng.normal(0, 0.02, size=50)
        after = difficulty + 0.03 + rng.normal(0, 0.02, size=50)
        return paired_bootstrap_ci(before, after, n=1000, seed=int(rng.integers(1 << 30)))

    assert 0.91 <= coverage(interval, 0.03) <= 0.98
    one = interval(np.random.default_rng(7))
    assert one.low is not None and one.low > 0  # unpaired, the case spread would swamp it


def test_a_statistic_over_rows_resamples_whole_rows():
    rows = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    found = bootstrap_ci(rows, lambda r: float(np.mean(r[:, 1] / r[:, 0])), n=200)
    assert found.estimate == found.low == found.high == 10.0  # every row has ratio 10


def test_the_same_seed_gives_the_same_interval_and_edge_counts_are_plain():
    values = [0.0, 1.0, 1.0, 0.0, 1.0]
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci([]) == Interval(None, None, None, 0)
    assert bootstrap_ci([0.4]) == Interval(0.4, 0.4, 0.4, 1)
    with pytest.raises(ValueError, match="differ in number"):
        paired_bootstrap_ci([1.0], [1.0, 2.0])
