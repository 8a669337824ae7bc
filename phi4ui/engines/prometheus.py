"""vLLM's Prometheus `/metrics` text, read from outside the server.

A scrape is a flat table of `vllm:` samples. Gauges (KV-cache use, running and
waiting requests) describe the server now. The request histograms (queue,
prefill, decode time) are cumulative, so one request's times are the growth of
their `_sum` between a scrape taken before it and one taken after it; that holds
only when exactly one request finished in between and it had this request's
token counts, and `request_timings` returns None otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from phi4ui.core.stats import EngineSnapshot, EngineTimings

KV_CACHE_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")  # new name, old name
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
GENERATION_TOKENS = "vllm:generation_tokens_total"
LORA_INFO = "vllm:lora_requests_info"
QUEUE_TIME = "vllm:request_queue_time_seconds"
PREFILL_TIME = "vllm:request_prefill_time_seconds"
DECODE_TIME = "vllm:request_decode_time_seconds"
REQUEST_PROMPT_TOKENS = "vllm:request_prompt_tokens"
REQUEST_GENERATION_TOKENS = "vllm:request_generation_tokens"

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Scrape:
    """Every `vllm:` sample of one scrape (histogram buckets left out)."""

    samples: dict[str, dict[Labels, float]]
    taken_at: float = field(default_factory=time.monotonic)

    def total(self, name: str) -> float | None:
        """The sum over every series of `name` (one per engine of a data-parallel
        server); None when the server does not export it."""
        series = self.samples.get(name)
        return None if series is None else sum(series.values())

    def mean(self, name: str) -> float | None:
        series = self.samples.get(name)
        if not series:
            return None
        return sum(series.values()) / len(series)

    def adapter_stamps(self) -> dict[str, float]:
        """When each set of running LoRA adapters was last seen by the scheduler.

        vLLM sets the info gauge of the current label set (e.g. "vision" or
        "speech,vision", "" for none) to the time, at every scheduler report.
        """
        stamps: dict[str, float] = {}
        for key, value in self.samples.get(LORA_INFO, {}).items():
            running = dict(key).get("running_lora_adapters", "")
            stamps[running] = max(value, stamps.get(running, 0.0))
        return stamps


def parse(text: str) -> Scrape:
    # The buckets are most of the text and none of what is read here.
    kept = "\n".join(line for line in text.splitlines()
                     if line.startswith("vllm:") and "_bucket{" not in line)
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(kept):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return Scrape(samples)


def looks_like_vllm(text: str) -> bool:
    # Any `vllm:` sample: a server with several API processes (`--api-server-count`) shows
    # its gauges (running, waiting, KV cache) only once a request has been served.
    return any(line.startswith("vllm:") for line in text.splitlines())


def running_adapters(scrape: Scrape) -> tuple[str, ...]:
    """The adapters in the scheduler's latest report."""
    stamps = scrape.adapter_stamps()
    if not stamps:
        return ()
    latest = max(stamps, key=lambda running: stamps[running])
    return _split(latest)


def adapters_between(before: Scrape, after: Scrape) -> tuple[str, ...]:
    """The adapters the scheduler ran at some report between two scrapes."""
    earlier = before.adapter_stamps()
    ran: set[str] = set()
    for running, stamp in after.adapter_stamps().items():
        if stamp > earlier.get(running, 0.0):
            ran.update(_split(running))
    return tuple(sorted(ran))


def _split(running: str) -> tuple[str, ...]:
    return tuple(name for name in running.split(",") if name)


def finished_between(before: Scrape, after: Scrape) -> int | None:
    """How many requests finished between two scrapes (by the queue-time histogram)."""
    grown = _growth(before, after, f"{QUEUE_TIME}_count")
    return None if grown is None else round(grown)


def request_timings(before: Scrape, after: Scrape, *, prompt_tokens: int | None,
                    completion_tokens: int | None) -> EngineTimings | None:
    """Queue, prefill and decode time of the one request that finished between two
    scrapes, when it is certainly ours; None otherwise."""
    if finished_between(before, after) != 1:
        return None
    for name, expected in ((REQUEST_PROMPT_TOKENS, prompt_tokens),
                           (REQUEST_GENERATION_TOKENS, completion_tokens)):
        grown = _growth(before, after, f"{name}_sum")
        if expected is not None and grown is not None and round(grown) != expected:
            return None
    queue, prefill, decode = (_growth(before, after, f"{name}_sum")
                              for name in (QUEUE_TIME, PREFILL_TIME, DECODE_TIME))
    return EngineTimings(queue_s=queue, prefill_s=prefill, decode_s=decode,
                         prompt_tokens=prompt_tokens)


def _growth(before: Scrape, after: Scrape, name: str) -> float | None:
    old, new = before.total(name), after.total(name)
    if old is None or new is None:
        return None
    return max(new - old, 0.0)


def snapshot(scrape: Scrape, *, process_memory: int,
             adapters: tuple[str, ...] | None = None) -> EngineSnapshot:
    """The server's state in one scrape; `adapters` replaces the latest report's set."""
    kv_cache = next((value for name in KV_CACHE_USAGE if (value := scrape.mean(name)) is not None),
                    None)
    return EngineSnapshot(
        kv_cache_usage=kv_cache,
        running=_as_int(scrape.total(RUNNING)),
        waiting=_as_int(scrape.total(WAITING)),
        running_adapters=running_adapters(scrape) if adapters is None else adapters,
        generation_tokens_total=_as_int(scrape.total(GENERATION_TOKENS)),
        device_name="remote server",
        process_memory=process_memory,
    )


def _as_int(value: float | None) -> int | None:
    return None if value is None else int(value)
