"""Random-weight Phi-4-multimodal checkpoints that vLLM loads with load_format="dummy".

Building one takes seconds and writes no base-model weights; tests and
CPU-only demos use it in place of microsoft/Phi-4-multimodal-instruct.

May import: nothing else of phi4ui (it is built by tests and by `phi4ui.engines`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .builder import (
    BUILDER_VERSION,
    build_checkpoint,
    checkpoint_key,
    ensure_checkpoint,
    is_random_weight_checkpoint,
)
from .shapes import FULL, TINY, CheckpointShape
from .vocab import AUDIO_PLACEHOLDER_ID, END_ID, EOS_ID, IMAGE_PLACEHOLDER_ID

if TYPE_CHECKING:
    from .counts import expected_audio_tokens, expected_image_tokens

__all__ = [
    "AUDIO_PLACEHOLDER_ID",
    "BUILDER_VERSION",
    "END_ID",
    "EOS_ID",
    "FULL",
    "IMAGE_PLACEHOLDER_ID",
    "TINY",
    "CheckpointShape",
    "build_checkpoint",
    "checkpoint_key",
    "ensure_checkpoint",
    "expected_audio_tokens",
    "expected_image_tokens",
    "is_random_weight_checkpoint",
]


def __getattr__(name: str) -> Any:
    # The counting functions import transformers; load them only when asked for.
    if name in ("expected_image_tokens", "expected_audio_tokens"):
        from . import counts

        return getattr(counts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
