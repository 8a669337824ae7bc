"""Random PEFT LoRA adapters over the language model's four projections of each layer.

Tensors are generated and written one at a time into a safetensors file, so
a rank-320 adapter for the full-size model (about a gigabyte) never sits in
memory as a whole.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .shapes import CheckpointShape

TARGET_MODULES = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
ADAPTER_SEEDS = {"vision-lora": 1, "speech-lora": 2}
_BF16_BYTES = 2


@dataclass(frozen=True)
class LoraTensor:
    name: str
    shape: tuple[int, int]
    fan_in: int

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * _BF16_BYTES


def _projections(shape: CheckpointShape) -> dict[str, tuple[int, int]]:
    """(input size, output size) of each adapted projection, as vLLM's Llama layers fuse them."""
    return {
        "self_attn.qkv_proj": (shape.hidden_size, shape.qkv_size),
        "self_attn.o_proj": (shape.num_attention_heads * shape.head_dim, shape.hidden_size),
        "mlp.gate_up_proj": (shape.hidden_size, 2 * shape.intermediate_size),
        "mlp.down_proj": (shape.intermediate_size, shape.hidden_size),
    }


def lora_tensors(shape: CheckpointShape) -> list[LoraTensor]:
    rank = shape.lora_rank
    tensors = []
    for layer in range(shape.num_hidden_layers):
        for module, (fan_in, fan_out) in _projections(shape).items():
            prefix = f"base_model.model.model.layers.{layer}.{module}"
            tensors.append(LoraTensor(f"{prefix}.lora_A.weight", (rank, fan_in), fan_in))
            tensors.append(LoraTensor(f"{prefix}.lora_B.weight", (fan_out, rank), rank))
    return tensors


def _bf16_bytes(values: np.ndarray) -> bytes:
    bits = values.astype(np.float32).view(np.uint32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest even
    return rounded.astype("<u2").tobytes()


def _header(tensors: list[LoraTensor]) -> bytes:
    entries: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for tensor in tensors:
        entries[tensor.name] = {
            "dtype": "BF16",
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + tensor.nbytes],
        }
        offset += tensor.nbytes
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header


def _tensor_data(tensors: list[LoraTensor], seed: int) -> Iterator[bytes]:
    rng = np.random.default_rng(seed)
    for tensor in tensors:
        # Unit-variance outputs: with vLLM's dummy base weights (|w| <= 1e-3) the
        # adapter then dominates each projection, so its effect is easy to see.
        values = rng.standard_normal(tensor.shape, dtype=np.float32)
        values *= np.float32(1.0 / np.sqrt(tensor.fan_in))
        yield _bf16_bytes(values)


def adapter_config(shape: CheckpointShape) -> dict[str, Any]:
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": None,
        "r": shape.lora_rank,
        "lora_alpha": 2 * shape.lora_rank,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": list(TARGET_MODULES),
        "modules_to_save": None,
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "inference_mode": True,
    }


def write_adapter(folder: Path, shape: CheckpointShape, seed: int) -> int:
    """Writes adapter_config.json and adapter_model.safetensors; returns the weight file's size."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps(adapter_config(shape), indent=2))
    tensors = lora_tensors(shape)
    path = folder / "adapter_model.safetensors"
    with path.open("wb") as handle:
        handle.write(_header(tensors))
        for chunk in _tensor_data(tensors, seed):
            handle.write(chunk)
    return path.stat().st_size


def write_adapters(folder: Path, shape: CheckpointShape) -> dict[str, int]:
    return {name: write_adapter(folder / name, shape, seed) for name, seed in ADAPTER_SEEDS.items()}
