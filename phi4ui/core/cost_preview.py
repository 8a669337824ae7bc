"""What the message being written will cost, shown before it is sent: each attached
file decoded and counted the way the model will count it, and the whole prompt
(conversation so far, system prompt and this message) against the context length."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi4ui.core import answer_stream
from phi4ui.core.audio import PreparedAudio, long_audio_note
from phi4ui.core.chat import Sampling
from phi4ui.core.engine import Engine
from phi4ui.core.history import files_of
from phi4ui.core.images import PreparedImage
from phi4ui.core.media import MediaLimits, prepare
from phi4ui.errors import BadInput, EngineUnavailable


@dataclass(frozen=True)
class MediaCost:
    images: int = 0
    image_tokens: int = 0
    audios: int = 0
    audio_seconds: float = 0.0
    audio_tokens: int = 0
    advice: tuple[str, ...] = ()  # notes the person should see before sending

    def add(self, item: PreparedImage | PreparedAudio) -> MediaCost:
        if isinstance(item, PreparedImage):
            return MediaCost(self.images + 1, self.image_tokens + item.tokens, self.audios,
                             self.audio_seconds, self.audio_tokens, self.advice)
        long_clip = long_audio_note(item.name, item.seconds)
        return MediaCost(self.images, self.image_tokens, self.audios + 1,
                         self.audio_seconds + item.seconds, self.audio_tokens + item.tokens,
                         self.advice + ((long_clip,) if long_clip else ()))

    def text(self) -> str:
        pieces = []
        if self.images:
            noun = "image" if self.images == 1 else "images"
            pieces.append(f"{self.images} {noun} · {self.image_tokens:,} tokens")
        if self.audios:
            noun = "audio" if self.audios == 1 else f"{self.audios} audio clips"
            pieces.append(f"{noun} {self.audio_seconds:.1f} s · {self.audio_tokens:,} tokens")
        pieces += [f"ℹ {advice}" for advice in self.advice]
        return "; ".join(pieces)


def prompt_text(total: int, max_model_len: int) -> str:
    return f"prompt so far ≈ {total:,} of {max_model_len:,} tokens"


async def describe(engine: Engine, history: Sequence[Mapping[str, Any]],
                   message: Mapping[str, Any] | None, system: str) -> str:
    """One line for under the input; empty while the input is empty."""
    message = message or {}
    paths = files_of(message)
    if not paths and not str(message.get("text") or "").strip():
        return ""
    try:
        cost = await media_cost(paths, engine.media_limits)
    except BadInput as error:
        return f"⚠ {error}"
    pieces = [cost.text()] if paths else []
    try:
        request = await answer_stream.plan(engine, history, message, system, Sampling())
    except EngineUnavailable:
        pieces.append("prompt size shown once the model has loaded")
    except BadInput as error:
        return "; ".join([*pieces, f"⚠ {error}"])
    else:
        pieces.append(prompt_text(request.tokens.total, engine.info.max_model_len))
    return "; ".join(pieces)


async def media_cost(paths: Sequence[str], limits: MediaLimits) -> MediaCost:
    """Decodes each file as the request will; raises `BadInput` for the first that fails."""
    cost = MediaCost()
    for path in paths:
        item = await asyncio.to_thread(prepare, Path(path), limits)
        cost = cost.add(item)
    return cost
