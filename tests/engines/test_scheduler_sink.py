"""The embedded engine's view of its schedulers, as vLLM's stat-logging hook reports them:
with data parallelism each engine core reports on its own, and the page shows one engine."""

from __future__ import annotations

from vllm.v1.metrics.stats import SchedulerStats

from phi4ui.engines.vllm_stats import SchedulerSnapshotSink


def stats(running: int, waiting: int, kv: float, adapters: dict[str, int]) -> SchedulerStats:
    report = SchedulerStats(num_running_reqs=running, num_waiting_reqs=waiting,
                            kv_cache_usage=kv)
    report.running_lora_adapters = adapters
    return report


def test_nothing_is_known_before_the_first_report() -> None:
    sink = SchedulerSnapshotSink()
    assert (sink.running, sink.waiting, sink.kv_cache_usage) == (None, None, None)


def test_two_engine_cores_read_as_one_engine() -> None:
    sink = SchedulerSnapshotSink()
    sink.record(stats(3, 1, 0.2, {"vision": 2}), engine_index=0)
    sink.record(stats(5, 0, 0.6, {"vision": 1, "speech": 4}), engine_index=1)
    sink.record(stats(4, 2, 0.4, {"vision": 1}), engine_index=0)  # core 0's newer report
    assert (sink.running, sink.waiting) == (9, 2)
    assert sink.kv_cache_usage == 0.5
    assert sink.running_adapters == {"vision": 2, "speech": 4}
