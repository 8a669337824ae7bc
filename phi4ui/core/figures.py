"""How figures read wherever a person sees them: times, rates, memory and the lengths and
sizes a refusal compares with a limit. Pure functions, one per kind of figure, so that the
chat, the evaluation tabs and the command line write the same figure the same way."""

from __future__ import annotations

import math


def seconds(value: float | None) -> str:
    """A time at a glance: '850 ms' under a second, '2.35 s' above; 'n/a' for none."""
    if value is None:
        return "n/a"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def exact_seconds(value: float | None) -> str:
    """A time to the millisecond, as tables that compare runs show it: '0.850 s'."""
    return "n/a" if value is None else f"{float(value):.3f} s"


def rate(tokens_per_s: float | None) -> str:
    return "n/a" if tokens_per_s is None else f"{float(tokens_per_s):.1f} tok/s"


def percent(fraction: float | None) -> str:
    """A fraction as a percentage, with two significant digits where one decimal reads 0.0%."""
    if fraction is None:
        return "n/a"
    if fraction == 0 or fraction >= 0.001:
        return f"{fraction * 100:.1f}%"
    return f"{fraction * 100:.2g}%"


def count(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def memory(used: int | None, total: int | None) -> str:
    """Bytes in GiB, with the total when there is one: '1.25 GiB of 80.0 GiB'."""
    if used is None:
        return "n/a"
    text = f"{used / 2**30:.2f} GiB"
    return f"{text} of {total / 2**30:.1f} GiB" if total else text


def number_beside(value: float, beside: float, fewest_decimals: int = 0) -> str:
    """`value` with the fewest decimals (up to 3) that tell it apart from `beside`, a limit."""
    for decimals in range(fewest_decimals, 4):
        text = f"{value:.{decimals}f}"
        if text != f"{beside:.{decimals}f}":
            break
    return text


def duration(seconds: float, beside: float | None = None) -> str:
    """'3 min 20 s', '2 h 0 min', '0.25 s': exact to the millisecond at most, and with as many
    decimals as it takes to differ from `beside` (a limit), so that a refusal never reads
    '3 min is longer than 3 min'."""
    for decimals in range(4):
        text = _duration_text(seconds, decimals)
        if beside is None and math.isclose(round(seconds, decimals), seconds, abs_tol=1e-9):
            break
        if beside is not None and text != _duration_text(beside, decimals):
            break
    return text


def _duration_text(seconds: float, decimals: int) -> str:
    if seconds >= 3600:
        hours, left = divmod(round(seconds), 3600)
        return f"{hours} h {left // 60} min"
    minutes, rest = divmod(round(seconds, decimals), 60)
    rest_text = f"{rest:.{decimals}f} s"
    if not minutes:
        return rest_text
    return f"{minutes:.0f} min" + (f" {rest_text}" if round(rest, decimals) else "")
