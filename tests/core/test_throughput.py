from __future__ import annotations

import pytest

from phi4ui.core.throughput import ThroughputHistory


def test_rates_between_snapshots() -> None:
    history = ThroughputHistory(window_s=300, min_interval_s=1)
    for at, total in [(100.0, 0), (102.0, 100), (104.0, 100), (106.0, 400)]:
        history.observe(total, at)
    assert history.rates(now=106.0) == [(-4.0, 50.0), (-2.0, 0.0), (0.0, 150.0)]
    assert history.latest() == 150.0


def test_samples_closer_than_the_interval_are_ignored() -> None:
    history = ThroughputHistory(min_interval_s=1)
    history.observe(0, 10.0)
    history.observe(50, 10.4)  # a second tab's tick
    history.observe(100, 11.0)
    assert history.rates(now=11.0) == [(0.0, 100.0)]


def test_old_samples_leave_the_window() -> None:
    history = ThroughputHistory(window_s=10, min_interval_s=1)
    for at in range(0, 30, 2):
        history.observe(at * 10, float(at))
    rates = history.rates(now=28.0)
    assert rates and all(-10 <= x <= 0 for x, _ in rates)
    assert all(rate == pytest.approx(10.0) for _, rate in rates)


def test_nothing_to_plot_without_a_counter_or_after_a_restart() -> None:
    history = ThroughputHistory()
    history.observe(None, 1.0)
    history.observe(None, 3.0)
    assert history.rates(now=3.0) == [] and history.latest() is None
    history.observe(500, 5.0)
    history.observe(900, 7.0)
    history.observe(20, 9.0)  # the engine restarted: its counter went back
    assert history.rates(now=9.0) == []
    history.observe(60, 11.0)
    assert history.rates(now=11.0) == [(0.0, 20.0)]
