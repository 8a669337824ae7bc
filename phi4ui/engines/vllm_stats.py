"""vLLM's statistics as the embedded engine reads them: the schedulers' latest views (KV-cache
use, requests running and waiting, adapters) from vLLM's stat-logging hook, and no
Prometheus logger in their place."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def stat_loggers(sink: SchedulerSnapshotSink) -> list[Any]:
    """The stat loggers an AsyncLLM of the app is given: the sink's, and none of vLLM's."""
    return [_logger_factory(sink), _no_prometheus_logger()]


def _no_prometheus_logger() -> Any:
    """Takes the place of vLLM's Prometheus logger, which vLLM adds unless it is given one:
    nothing in the app reads its metrics, and recording them every engine step took about
    6% of the app process's busy time under load (py-spy, 16 people on the tiny engine)."""
    from vllm.v1.metrics.loggers import PrometheusStatLogger

    class NoPrometheus(PrometheusStatLogger):
        def __init__(self, vllm_config: Any, engine_indexes: Any = None) -> None:
            pass

        def record(self, *args: Any, **kwargs: Any) -> None:
            pass

        def record_sleep_state(self, *args: Any, **kwargs: Any) -> None:
            pass

        def record_admission_rejection(self, *args: Any, **kwargs: Any) -> None:
            pass

        def log(self) -> None:
            pass

        def log_engine_initialized(self) -> None:
            pass

    return NoPrometheus


@dataclass(frozen=True)
class _SchedulerView:
    kv_cache_usage: float
    running: int
    waiting: int
    running_adapters: dict[str, int]


class SchedulerSnapshotSink:
    """Holds the schedulers' latest views, written by vLLM's stat-logging hook: one per
    engine core (several with `--data-parallel-size`), read as one engine: requests
    summed, KV-cache use averaged (each core has its own cache of the same size)."""

    def __init__(self) -> None:
        self._views: dict[int, _SchedulerView] = {}
        # Scheduler steps that ran each adapter, since start: shows which adapter served what.
        self.adapter_steps: Counter[str] = Counter()
        self.generation_tokens_total = 0
        self.updated_at: float | None = None  # monotonic time of the latest view
        self.listener: Callable[[SchedulerSnapshotSink], object] | None = None  # after each
        self.active = 0  # the engine's requests in flight, as its caller counts them

    def record(self, scheduler_stats: Any, iteration_stats: Any = None,
               engine_index: int = 0) -> None:
        if iteration_stats is not None:
            self.generation_tokens_total += int(iteration_stats.num_generation_tokens)
        if scheduler_stats is not None:
            adapters = dict(getattr(scheduler_stats, "running_lora_adapters", {}) or {})
            self.updated_at = time.monotonic()
            self._views[engine_index] = _SchedulerView(
                float(scheduler_stats.kv_cache_usage), int(scheduler_stats.num_running_reqs),
                int(scheduler_stats.num_waiting_reqs), adapters)
            self.adapter_steps.update(adapters.keys())
        if self.listener is not None:
            self.listener(self)

    def set_active(self, count: int) -> None:
        self.active = count
        if self.listener is not None:
            self.listener(self)

    @property
    def kv_cache_usage(self) -> float | None:
        views = self._views.values()
        return sum(v.kv_cache_usage for v in views) / len(views) if views else None

    @property
    def running(self) -> int | None:
        return sum(v.running for v in self._views.values()) if self._views else None

    @property
    def waiting(self) -> int | None:
        return sum(v.waiting for v in self._views.values()) if self._views else None

    @property
    def running_adapters(self) -> dict[str, int]:
        merged: Counter[str] = Counter()
        for view in self._views.values():
            merged.update(view.running_adapters)
        return dict(merged)


def _logger_factory(sink: SchedulerSnapshotSink) -> Any:
    from vllm.v1.metrics.loggers import StatLoggerBase

    class SnapshotLogger(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            self.engine_index = engine_index

        def record(self, scheduler_stats: Any, iteration_stats: Any,
                   mm_cache_stats: Any = None, engine_idx: int = 0) -> None:
            sink.record(scheduler_stats, iteration_stats, engine_idx)

        def log_engine_initialized(self) -> None:
            pass

    return SnapshotLogger
