"""Configuration class for random-weight Phi-4-multimodal test checkpoints.

This file is copied into each generated checkpoint folder and loaded by
transformers through ``auto_map`` (``trust_remote_code=True``), so it must
stay self-contained: no imports from the ``phi4ui`` package.
"""

from __future__ import annotations

from typing import Any

from transformers import Phi3Config


class Phi4MMConfig(Phi3Config):
    """Phi-3 text config plus the multimodal sections vLLM's Phi4MM model reads."""

    model_type = "phi4mm"

    embd_layer: dict[str, Any] | str = "default"
    img_processor: dict[str, Any] | str | None = None
    audio_processor: dict[str, Any] | None = None
    vision_lora: dict[str, Any] | None = None
    speech_lora: dict[str, Any] | None = None


__all__ = ["Phi4MMConfig"]
