"""Upload-to-engine-input time of a large photo and a long recording."""

from __future__ import annotations

import statistics
import time
from typing import Any

from phi4ui.core.audio import prepare_audio_bytes
from phi4ui.core.images import prepare_image_bytes
from phi4ui.core.media import MediaLimits

REPEATS = 7


def measure(media: dict[str, str]) -> dict[str, Any]:
    """Median and worst of several runs (the first run included: nothing is cached here)."""
    limits = MediaLimits()
    found = {}
    for key, prepare in (("photo_12mp", prepare_image_bytes), ("speech_60s", prepare_audio_bytes)):
        with open(media[key], "rb") as handle:
            data = handle.read()
        times = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            item = prepare(data, key, limits)
            times.append(time.perf_counter() - started)
        found[key] = {"bytes": len(data), "p50_ms": round(statistics.median_low(times) * 1000, 1),
                      "max_ms": round(max(times) * 1000, 1), "tokens": item.tokens}
    return found
