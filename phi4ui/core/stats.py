"""What an answer cost and what the engine holds, measured the same way for every engine.

`StatsRecorder` times the stream as the app sees it (first token, gaps between
tokens, end); the engine adds its own view (queue, prefill and decode time) and a
snapshot of its state. `RequestStats` is the result, shown under each answer and
stored with it.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from phi4ui.core import figures


@dataclass(frozen=True)
class EngineSnapshot:
    """The engine's state at one moment; None where the engine does not report a figure."""

    kv_cache_usage: float | None = None  # fraction, 0..1
    running: int | None = None
    waiting: int | None = None
    running_adapters: tuple[str, ...] = ()
    generation_tokens_total: int | None = None  # since the engine started; for rates over time
    device_memory_used: int | None = None  # bytes: the GPU through NVML, or the engine's RSS
    device_memory_total: int | None = None
    device_name: str = ""
    process_memory: int = 0  # bytes, the app's own process
    taken_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class EngineTimings:
    """The engine's own view of a request, where it reports one."""

    queue_s: float | None = None
    prefill_s: float | None = None
    decode_s: float | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None


@dataclass(frozen=True)
class RequestStats:
    engine: str
    adapter: str | None
    finish_reason: str
    ttft_s: float | None
    e2e_s: float
    completion_tokens: int
    prompt_tokens: int
    prompt_text_tokens: int
    prompt_image_tokens: int
    prompt_audio_tokens: int
    decode_tokens_per_s: float | None
    itl_p50_s: float | None
    itl_p95_s: float | None
    queue_s: float | None = None
    prefill_s: float | None = None
    decode_s: float | None = None
    snapshot: EngineSnapshot | None = None
    missing: tuple[str, ...] = ()  # figures this engine could not report

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for under the answer."""
        pieces = []
        if self.ttft_s is not None:
            pieces.append(f"first token {figures.seconds(self.ttft_s)}")
        if self.decode_tokens_per_s is not None:
            pieces.append(f"{self.decode_tokens_per_s:.1f} tok/s")
        pieces.append(f"{self.completion_tokens} tokens in {figures.seconds(self.e2e_s)}")
        pieces.append(f"prompt {self.prompt_tokens}")
        if self.adapter:
            pieces.append(f"{self.adapter} adapter")
        return " · ".join(pieces)

    def details(self) -> str:
        """A Markdown table of every figure."""
        rows = [
            ("Time to first token", figures.seconds(self.ttft_s)),
            ("End to end", figures.seconds(self.e2e_s)),
            ("Decode speed", figures.rate(self.decode_tokens_per_s)),
            ("Inter-token latency p50 / p95",
             f"{figures.seconds(self.itl_p50_s)} / {figures.seconds(self.itl_p95_s)}"),
            ("Prompt tokens (text / image / audio)",
             f"{self.prompt_tokens} ({self.prompt_text_tokens} / {self.prompt_image_tokens} / "
             f"{self.prompt_audio_tokens})"),
            ("Completion tokens", f"{self.completion_tokens} ({self.finish_reason})"),
            ("Engine queue / prefill / decode",
             " / ".join(figures.seconds(s) for s in (self.queue_s, self.prefill_s, self.decode_s))),
            ("Adapter", self.adapter or "none (base model)"),
        ]
        rows += snapshot_rows(self.snapshot)
        table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
        if self.missing:
            table += f"\n\nNot reported by this engine: {', '.join(self.missing)}."
        return table


def snapshot_rows(snapshot: EngineSnapshot | None) -> list[tuple[str, str]]:
    if snapshot is None:
        return []
    device = snapshot.device_name or "device"
    return [
        ("KV cache in use", figures.percent(snapshot.kv_cache_usage)),
        ("Requests running / waiting",
         f"{figures.count(snapshot.running)} / {figures.count(snapshot.waiting)}"),
        ("Adapters running", ", ".join(snapshot.running_adapters) or "none"),
        (f"Memory ({device})",
         figures.memory(snapshot.device_memory_used, snapshot.device_memory_total)),
        ("App process memory", figures.memory(snapshot.process_memory, None)),
    ]


class StatsRecorder:
    """Times one stream from the app's side: call `tokens()` as deltas arrive, then `finish()`."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.completion_tokens = 0
        # An array, not a list: one answer's gaps are no objects for the garbage collector
        # to walk while it streams.
        self._gaps = array("d")

    def tokens(self, count: int) -> None:
        if count <= 0:
            return
        now = time.perf_counter()
        if self.last_token_at is None:
            self.first_token_at = now
        else:
            # A delta may carry several tokens: spread its gap over them.
            self._gaps.extend([(now - self.last_token_at) / count] * count)
        self.completion_tokens += count
        self.last_token_at = now

    def finish(self, *, engine: str, adapter: str | None, finish_reason: str,
               prompt_tokens: int, prompt_text_tokens: int, prompt_image_tokens: int,
               prompt_audio_tokens: int, timings: EngineTimings | None = None,
               snapshot: EngineSnapshot | None = None, missing: Sequence[str] = (),
               completion_tokens: int | None = None) -> RequestStats:
        ended = time.perf_counter()
        timings = timings or EngineTimings()
        ttft = None if self.first_token_at is None else self.first_token_at - self.started
        return RequestStats(
            engine=engine, adapter=adapter, finish_reason=finish_reason, ttft_s=ttft,
            e2e_s=ended - self.started,
            completion_tokens=self.completion_tokens if completion_tokens is None
            else completion_tokens,
            prompt_tokens=prompt_tokens, prompt_text_tokens=prompt_text_tokens,
            prompt_image_tokens=prompt_image_tokens, prompt_audio_tokens=prompt_audio_tokens,
            decode_tokens_per_s=self._decode_rate(), itl_p50_s=percentile(self._gaps, 50),
            itl_p95_s=percentile(self._gaps, 95), queue_s=timings.queue_s,
            prefill_s=timings.prefill_s, decode_s=timings.decode_s, snapshot=snapshot,
            missing=tuple(missing),
        )

    def _decode_rate(self) -> float | None:
        if not self._gaps or self.first_token_at is None or self.last_token_at is None:
            return None
        span = self.last_token_at - self.first_token_at
        return len(self._gaps) / span if span > 0 else None


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]
