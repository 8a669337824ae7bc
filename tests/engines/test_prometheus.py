"""vLLM's `/metrics` text read without a server: which samples are kept, the state a scrape
shows, and the one request's timings between two scrapes, only when they are certainly its.

The text follows vLLM's exposition (names, labels, histogram series); the engine tests read
the real one from a running server.
"""

from __future__ import annotations

import pytest

from phi4ui.core.stats import EngineTimings
from phi4ui.engines import prometheus

HEADER = """\
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 1234.0
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
# HELP vllm:lora_requests_info Running stats on lora requests.
# TYPE vllm:lora_requests_info gauge
"""
HISTOGRAMS = ("request_queue_time_seconds", "request_prefill_time_seconds",
              "request_decode_time_seconds", "request_prompt_tokens",
              "request_generation_tokens")
LABELS = 'engine="0",model_name="phi4"'


def metrics(*, finished: int = 0, sums: tuple[float, ...] = (0, 0, 0, 0, 0),
            running: int = 0, waiting: int = 0, kv: float = 0.0, generated: float = 0.0,
            adapters: dict[str, float] | None = None) -> str:
    """A /metrics text after `finished` requests whose histogram sums are `sums`, in the
    order of `HISTOGRAMS`; `adapters`: running set -> when the scheduler last reported it."""
    lines = [HEADER,
             f"vllm:num_requests_running{{{LABELS}}} {running}.0",
             f"vllm:num_requests_waiting{{{LABELS}}} {waiting}.0",
             f"vllm:kv_cache_usage_perc{{{LABELS}}} {kv}",
             f"vllm:generation_tokens_total{{{LABELS}}} {generated}"]
    for running_set, stamp in (adapters or {}).items():
        lines.append(f'vllm:lora_requests_info{{max_lora="2",running_lora_adapters="{running_set}",'
                     f'waiting_lora_adapters=""}} {stamp}')
    for name, total in zip(HISTOGRAMS, sums, strict=True):
        lines += [f"# HELP vllm:{name} Histogram of {name}.",
                  f"# TYPE vllm:{name} histogram",
                  f'vllm:{name}_bucket{{{LABELS},le="1.0"}} {finished}.0',
                  f'vllm:{name}_bucket{{{LABELS},le="+Inf"}} {finished}.0',
                  f"vllm:{name}_count{{{LABELS}}} {finished}.0",
                  f"vllm:{name}_sum{{{LABELS}}} {total}"]
    return "\n".join(lines) + "\n"


BEFORE = prometheus.parse(metrics(finished=3, sums=(0.5, 1.0, 2.0, 300, 90)))


def test_a_scrape_keeps_vllm_s_samples_without_the_buckets():
    scrape = prometheus.parse(metrics(finished=1, running=2, waiting=1, kv=0.25))
    assert "python_gc_objects_collected_total" not in scrape.samples
    assert not any(name.endswith("_bucket") for name in scrape.samples)
    assert scrape.total(prometheus.RUNNING) == 2
    assert scrape.total(f"{prometheus.QUEUE_TIME}_count") == 1
    assert scrape.samples[prometheus.WAITING] == {
        frozenset({("engine", "0"), ("model_name", "phi4")}): 1.0}
    assert scrape.total("vllm:not_exported") is None
    assert scrape.mean("vllm:not_exported") is None


def test_only_vllm_s_metrics_look_like_vllm():
    assert prometheus.looks_like_vllm(metrics())
    assert not prometheus.looks_like_vllm("# HELP up Whether up.\nup 1\n")


def without_gauges(text: str) -> str:
    gauges = (prometheus.RUNNING, prometheus.WAITING, *prometheus.KV_CACHE_USAGE)
    return "\n".join(line for line in text.splitlines() if not line.startswith(gauges)) + "\n"


def test_a_server_with_several_api_processes_is_vllm_before_its_first_request():
    # With --api-server-count > 1 the gauges appear only once a request has been served
    # (seen on vLLM 0.32's server); the histograms and counters are there from the start.
    text = without_gauges(metrics())
    assert "vllm:num_requests_running{" not in text
    assert prometheus.looks_like_vllm(text)
    shown = prometheus.snapshot(prometheus.parse(text), process_memory=1)
    assert (shown.running, shown.waiting, shown.kv_cache_usage) == (None, None, None)


def test_a_data_parallel_server_sums_counts_and_averages_the_cache():
    text = metrics(running=1, kv=0.2) + (
        'vllm:num_requests_running{engine="1",model_name="phi4"} 3.0\n'
        'vllm:kv_cache_usage_perc{engine="1",model_name="phi4"} 0.6\n')
    snapshot = prometheus.snapshot(prometheus.parse(text), process_memory=1000)
    assert snapshot.running == 4
    assert snapshot.kv_cache_usage == pytest.approx(0.4)


def test_the_snapshot_shows_the_server_now_and_its_latest_adapters():
    scrape = prometheus.parse(metrics(running=1, waiting=2, kv=0.5, generated=77,
                                      adapters={"": 100.0, "vision": 105.0, "speech": 103.0}))
    snapshot = prometheus.snapshot(scrape, process_memory=2048)
    assert (snapshot.running, snapshot.waiting, snapshot.kv_cache_usage) == (1, 2, 0.5)
    assert snapshot.generation_tokens_total == 77
    assert snapshot.running_adapters == ("vision",)
    assert snapshot.device_name == "remote server"
    assert snapshot.process_memory == 2048
    given = prometheus.snapshot(scrape, process_memory=0, adapters=("speech",))
    assert given.running_adapters == ("speech",)


def test_an_older_vllm_s_cache_gauge_is_read_under_its_old_name():
    text = metrics().replace("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
    text = text.replace("gpu_cache_usage_perc{engine=\"0\",model_name=\"phi4\"} 0.0",
                        "gpu_cache_usage_perc{engine=\"0\",model_name=\"phi4\"} 0.75")
    assert prometheus.snapshot(prometheus.parse(text), process_memory=0).kv_cache_usage == 0.75


def test_a_server_without_the_gauges_leaves_them_unknown():
    snapshot = prometheus.snapshot(prometheus.parse(""), process_memory=0)
    assert snapshot.running is None
    assert snapshot.kv_cache_usage is None
    assert snapshot.running_adapters == ()


def test_the_adapters_between_two_scrapes_are_those_reported_in_between():
    before = prometheus.parse(metrics(adapters={"": 100.0, "vision": 90.0}))
    after = prometheus.parse(metrics(adapters={"": 110.0, "vision": 90.0, "speech,vision": 104.0}))
    assert prometheus.adapters_between(before, after) == ("speech", "vision")
    assert prometheus.adapters_between(after, after) == ()


def test_one_request_s_timings_are_the_growth_of_the_histogram_sums():
    after = prometheus.parse(metrics(finished=4, sums=(0.75, 1.5, 3.25, 312, 95)))
    assert prometheus.finished_between(BEFORE, after) == 1
    timings = prometheus.request_timings(BEFORE, after, prompt_tokens=12, completion_tokens=5)
    assert timings == EngineTimings(queue_s=0.25, prefill_s=0.5, decode_s=1.25, prompt_tokens=12)


def test_timings_are_given_up_when_they_may_be_another_request_s():
    two = prometheus.parse(metrics(finished=5, sums=(1.0, 2.0, 4.0, 324, 100)))
    assert prometheus.finished_between(BEFORE, two) == 2
    assert prometheus.request_timings(BEFORE, two, prompt_tokens=12,
                                      completion_tokens=5) is None
    other = prometheus.parse(metrics(finished=4, sums=(0.75, 1.5, 3.25, 340, 95)))
    assert prometheus.request_timings(BEFORE, other, prompt_tokens=12,
                                      completion_tokens=5) is None
    assert prometheus.request_timings(BEFORE, BEFORE, prompt_tokens=12,
                                      completion_tokens=5) is None


def test_unknown_token_counts_do_not_stand_in_the_way():
    after = prometheus.parse(metrics(finished=4, sums=(0.75, 1.5, 3.25, 340, 95)))
    timings = prometheus.request_timings(BEFORE, after, prompt_tokens=None,
                                         completion_tokens=None)
    assert timings is not None
    assert timings.queue_s == 0.25


def test_a_server_restarted_between_scrapes_gives_no_timings():
    # Its counters start again from zero: the growth is clipped, never negative.
    restarted = prometheus.parse(metrics(finished=1, sums=(0.1, 0.2, 0.3, 12, 5)))
    assert prometheus.finished_between(BEFORE, restarted) == 0
    assert prometheus.request_timings(BEFORE, restarted, prompt_tokens=12,
                                      completion_tokens=5) is None
