"""vLLM's own OpenAI server, started with the settings the embedded engine would use,
for deployments with several page processes in front of one engine (see
`phi4ui.scaleout`). The flags mirror `vllm_compat.engine_args`; a test parses them
with vLLM's own parser and compares."""

from __future__ import annotations

import json
import sys

from phi4ui.engines import model_source, vllm_compat
from phi4ui.engines.model_source import ModelSource
from phi4ui.engines.vllm_compat import EngineConfig, compilation_flags, executor_backend
from phi4ui.settings import Settings


def serve_command(config: EngineConfig, source: ModelSource, *, host: str, port: int,
                  api_servers: int) -> list[str]:
    """`vllm serve` (its command line, the one that honours `--api-server-count`)."""
    return [
        sys.executable, "-m", "phi4ui.engines.vllm_cli", "serve", config.model,
        *_model_flags(config), *_adapter_flags(config, source), *_capacity_flags(config),
        "--host", host, "--port", str(port), "--api-server-count", str(api_servers),
        "--disable-uvicorn-access-log",
    ]


def _model_flags(config: EngineConfig) -> list[str]:
    revision = config.revision
    return [
        *(["--revision", revision, "--tokenizer-revision", revision] if revision else []),
        "--trust-remote-code",
        "--load-format", "dummy" if config.random_weights else "auto",
        "--dtype", config.dtype,
        "--max-model-len", str(config.max_model_len),
        "--limit-mm-per-prompt", json.dumps({"image": config.max_images,
                                             "audio": config.max_audios}),
        "--mm-processor-kwargs", json.dumps({"dynamic_hd": config.dynamic_hd}),
    ]


def _adapter_flags(config: EngineConfig, source: ModelSource) -> list[str]:
    # The names are the adapters' names in requests (see `remote_server`).
    return ["--enable-lora", "--max-lora-rank", str(config.max_lora_rank), "--max-loras", "2",
            "--lora-modules", f"vision={source.vision_lora}", f"speech={source.speech_lora}"]


def _capacity_flags(config: EngineConfig) -> list[str]:
    return [
        "--max-num-batched-tokens", str(max(config.max_model_len, 8192)),
        "--max-num-seqs", str(config.max_num_seqs),
        "--gpu-memory-utilization", str(config.gpu_memory_utilization),
        "--tensor-parallel-size", str(config.tensor_parallel_size),
        "--data-parallel-size", str(config.data_parallel_size),
        "--stream-interval", str(config.stream_interval),
        "--distributed-executor-backend", executor_backend(config),
        *(["--enforce-eager"] if config.enforce_eager else []),
        *compilation_flags(config),
    ]


def command_for(settings: Settings, *, host: str, port: int, api_servers: int) -> list[str]:
    """The server command for these settings, the model resolved as the embedded engine
    resolves it (a tiny random-weight checkpoint is built here when that is what runs)."""
    vllm_compat.set_process_defaults(settings.cpu_kv_cache_gib)
    has_gpu = vllm_compat.has_cuda()
    source = model_source.resolve(settings, has_gpu=has_gpu)
    config = vllm_compat.engine_config(settings, source, has_gpu=has_gpu)
    return serve_command(config, source, host=host, port=port, api_servers=api_servers)
