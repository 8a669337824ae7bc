"""Configuration class for random-weight Phi-4-multimodal test checkpoints.

This file is copied into each generated checkpoint folder and loaded by
transformers through ``auto_map`` (``trust_remote_code=True``), so it must
stay self-contained: no imports from the ``phi4ui`` package.
"""

from __future__ import annotations

from typing import Any

from transformers import Phi3Config


class VisionTower(dict):
    """An ``img_processor`` section that vLLM can read both ways it reads that key.

    vLLM takes the tower's depth from it as a dict (``layer_idx``) and looks its
    preprocessing up in a table keyed by the tower's name. A plain dict cannot
    be a table key and a plain name carries no depth, so this dict hashes and
    compares equal to its ``name``.
    """

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self.get("name"))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return other == self.get("name")
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:  # else dict's own != would disagree with ==
        return not self == other


class Phi4MMConfig(Phi3Config):
    """Phi-3 text config plus the multimodal sections vLLM's Phi4MM model reads."""

    model_type = "phi4mm"

    embd_layer: dict[str, Any] | str = "default"
    img_processor: dict[str, Any] | str | None = None
    audio_processor: dict[str, Any] | None = None
    vision_lora: dict[str, Any] | None = None
    speech_lora: dict[str, Any] | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(self.img_processor, dict):
            self.img_processor = VisionTower(self.img_processor)


__all__ = ["Phi4MMConfig", "VisionTower"]
