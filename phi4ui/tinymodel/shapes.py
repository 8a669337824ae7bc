"""Sizes of the generated checkpoints."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckpointShape:
    """Sizes of a Phi-4-multimodal checkpoint: language model, vision tower, audio, adapters.

    vLLM builds the SigLIP-so400m vision tower from a fixed configuration; only
    its depth can be chosen. ``vision_layers`` None keeps the real model's 26
    layers, whose forward takes about 45 s per new image on 2 CPU cores.
    """

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    audio_attention_dim: int
    audio_attention_heads: int
    audio_num_blocks: int
    audio_linear_units: int
    lora_rank: int
    vocab_size: int = 200064
    max_position_embeddings: int = 131072
    original_max_position_embeddings: int = 4096
    partial_rotary_factor: float = 0.75
    audio_time_reduction: int = 8
    audio_conv_channels: int | None = None  # None: same as audio_attention_dim
    vision_layers: int | None = None  # None: the real model's depth
    name: str = "custom"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)

    @property
    def qkv_size(self) -> int:
        return (self.num_attention_heads + 2 * self.num_key_value_heads) * self.head_dim

    def validate(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if self.audio_attention_dim % self.audio_attention_heads:
            raise ValueError("audio_attention_dim must be a multiple of audio_attention_heads")
        if self.rotary_dim % 2:
            raise ValueError("the rotary part of a head must have an even size")
        if self.vision_layers is not None and not 1 <= self.vision_layers <= 27:
            raise ValueError("vision_layers must be between 1 and 27 (the SigLIP tower's depth)")
        if self.vocab_size <= 200029:
            raise ValueError("vocab_size must leave room for the special tokens (ids up to 200028)")


TINY = CheckpointShape(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    audio_attention_dim=64,
    audio_attention_heads=2,
    audio_num_blocks=1,
    audio_linear_units=128,
    lora_rank=8,
    vision_layers=1,
    name="tiny",
)

FULL = CheckpointShape(
    hidden_size=3072,
    intermediate_size=8192,
    num_hidden_layers=32,
    num_attention_heads=24,
    num_key_value_heads=8,
    audio_attention_dim=1024,
    audio_attention_heads=16,
    audio_num_blocks=24,
    audio_linear_units=1536,
    lora_rank=320,
    name="full",
)
