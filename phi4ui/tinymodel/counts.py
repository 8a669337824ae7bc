"""Placeholder-token counts that vLLM computes for Phi-4-multimodal media items."""

from __future__ import annotations

from .remote import processing_phi4mm as _processing


def expected_image_tokens(width: int, height: int, dynamic_hd: int) -> int:
    """Tokens one width x height image takes in the prompt (global view, crops, separators)."""
    return _processing.image_token_count(width, height, dynamic_hd)


def expected_audio_tokens(num_samples: int, sampling_rate: int = 16000) -> int:
    """Tokens one clip takes in the prompt: one per 8 log-mel frames of its 16 kHz waveform."""
    if sampling_rate != _processing.SAMPLING_RATE:
        num_samples = _processing.resampled_length(num_samples, sampling_rate)
    return _processing.audio_token_count(_processing.audio_frame_count(num_samples))
