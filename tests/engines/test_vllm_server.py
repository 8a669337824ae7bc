"""The `vllm serve` command a scaled-out deployment starts runs the model with the embedded
engine's settings: its flags, read by vLLM's own parser, give the engine arguments the
embedded engine builds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from phi4ui.engines import vllm_compat
from phi4ui.engines.model_source import ModelSource
from phi4ui.engines.vllm_server import serve_command

COMPARED = ("model", "revision", "tokenizer_revision", "trust_remote_code", "load_format",
            "max_model_len", "max_num_batched_tokens", "max_num_seqs", "limit_mm_per_prompt",
            "mm_processor_kwargs", "enable_lora", "max_lora_rank", "max_loras",
            "gpu_memory_utilization", "tensor_parallel_size", "data_parallel_size",
            "distributed_executor_backend", "enforce_eager", "stream_interval", "dtype")
CONFIG = vllm_compat.EngineConfig(
    model="(the tiny checkpoint)", revision="0ae13bd", random_weights=False, max_model_len=12288,
    max_images=3, max_audios=1, dynamic_hd=16, max_lora_rank=320, max_num_seqs=48,
    gpu_memory_utilization=0.8, tensor_parallel_size=1, enforce_eager=False,
    data_parallel_size=2, stream_interval=4, dtype="float16")


def parsed(command: list[str]) -> tuple[Any, Any]:
    """`vllm serve`'s arguments as vLLM's own parser for that command reads them."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.cli import serve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm")
    (subcommand,) = serve.cmd_init()
    subcommand.subparser_init(parser.add_subparsers(dest="subparser"))
    args = parser.parse_args(command[command.index("phi4ui.engines.vllm_cli") + 1:])
    args.model = args.model_tag  # what `vllm serve` does with its positional MODEL
    return args, AsyncEngineArgs.from_cli_args(args)


def source_of(checkpoint: Path) -> ModelSource:
    return ModelSource(path=str(checkpoint), revision=None,
                       vision_lora=str(checkpoint / "vision-lora"),
                       speech_lora=str(checkpoint / "speech-lora"), random_weights=True,
                       dynamic_hd=16, display_name="tiny")


@pytest.mark.parametrize("changes", [{}, {
    "revision": None, "random_weights": True, "enforce_eager": True, "tensor_parallel_size": 2,
    "data_parallel_size": 1}, {"cuda_graph_mode": "full"}],
    ids=["real", "random-eager-tp2", "full-cuda-graphs"])
def test_the_server_gets_the_embedded_engine_s_arguments(checkpoint: Path,
                                                          changes: dict[str, Any]) -> None:
    config = dataclasses.replace(CONFIG, model=str(checkpoint), **changes)
    source = source_of(checkpoint)
    args, server = parsed(serve_command(config, source, host="127.0.0.1", port=8123,
                                        api_servers=4))
    embedded = vllm_compat.engine_args(config)
    assert {name: getattr(server, name) for name in COMPARED} == {
        name: getattr(embedded, name) for name in COMPARED}
    modes = {str(e.compilation_config.cudagraph_mode) for e in (server, embedded)}
    assert modes == {"FULL" if config.cuda_graph_mode == "full" else "None"}
    assert (args.host, args.port, args.api_server_count) == ("127.0.0.1", 8123, 4)
    adapters = {module.name: module.path for module in args.lora_modules}
    assert adapters == {"vision": source.vision_lora, "speech": source.speech_lora}


def test_the_limits_travel_as_json(tmp_path: Path) -> None:
    command = serve_command(CONFIG, source_of(tmp_path), host="127.0.0.1", port=1,
                            api_servers=1)
    limits = command[command.index("--limit-mm-per-prompt") + 1]
    assert json.loads(limits) == {"image": 3, "audio": 1}
