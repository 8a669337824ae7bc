"""Figures as a person reads them, the same on every page and in every refusal."""

import pytest

from phi4ui.core import figures


@pytest.mark.parametrize(("value", "shown"), [
    (None, "n/a"), (0.0004, "0 ms"), (0.85, "850 ms"), (0.9996, "1000 ms"), (1.0, "1.00 s"),
    (12.345, "12.35 s"),
])
def test_seconds_switch_from_milliseconds_at_one_second(value, shown):
    assert figures.seconds(value) == shown


def test_exact_seconds_and_rates_keep_their_decimals():
    assert figures.exact_seconds(0.85) == "0.850 s"
    assert figures.exact_seconds(None) == "n/a"
    assert figures.rate(41.26) == "41.3 tok/s"
    assert figures.rate(None) == "n/a"


def test_small_fractions_keep_two_significant_digits():
    assert figures.percent(0.0) == "0.0%"
    assert figures.percent(0.25) == "25.0%"
    assert figures.percent(0.000123) == "0.012%"
    assert figures.percent(None) == "n/a"


def test_memory_in_gibibytes_with_the_total_when_known():
    assert figures.memory(3 * 2**29, None) == "1.50 GiB"
    assert figures.memory(2**30, 80 * 2**30) == "1.00 GiB of 80.0 GiB"
    assert figures.memory(None, 2**30) == "n/a"


def test_a_number_beside_its_limit_never_reads_the_same():
    assert figures.number_beside(50.0004, beside=50.0) == "50.000"  # as far as 3 decimals go
    assert figures.number_beside(50.04, beside=50.0) == "50.04"
    assert figures.number_beside(61.0, beside=50.0, fewest_decimals=1) == "61.0"


@pytest.mark.parametrize(("seconds", "beside", "shown"), [
    (0.25, None, "0.25 s"), (200.0, None, "3 min 20 s"), (180.0, None, "3 min"),
    (7200.0, None, "2 h 0 min"), (180.4, 180.0, "3 min 0.4 s"), (0.2995, 0.3, "0.299 s"),
])
def test_durations_read_in_minutes_and_differ_from_their_limit(seconds, beside, shown):
    assert figures.duration(seconds, beside=beside) == shown
