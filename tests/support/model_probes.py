"""Functions that `LLM.apply_model` runs inside vLLM's worker process.

They are pickled by name, so they live in a module the worker can import.
"""

from __future__ import annotations

from typing import Any


def vision_tower_depth(model: Any) -> int:
    """Layers of the SigLIP tower that vLLM built for a Phi4MM model."""
    return len(model.vision_encoder.img_processor.encoder.layers)
