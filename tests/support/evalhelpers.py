"""Requests, statistics and records made without an engine, for store-only tests, and
the engine's own answers for the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phi4ui.core import answer_stream
from phi4ui.core.chat import ChatRequest, Sampling, TokenCount, Turn
from phi4ui.core.engine import EngineInfo
from phi4ui.core.media import MediaLimits, prepare
from phi4ui.core.stats import StatsRecorder
from phi4ui.evaluation.recording import build_record
from phi4ui.evaluation.store import AnswerRecord

INFO = EngineInfo(kind="embedded", model="tiny", revision="abc123", max_model_len=4096,
                  max_images=2, max_audios=2)


def request_with(text: str, files: tuple[Path, ...] = (), *, system: str = "Be brief.",
                 earlier: tuple[Turn, ...] = ()) -> ChatRequest:
    media = tuple(prepare(path, MediaLimits(dynamic_hd=4)) for path in files)
    turn = Turn("user", (*media, text))
    adapter = "vision" if any(m.__class__.__name__ == "PreparedImage" for m in media) else None
    return ChatRequest(system=system, turns=(*earlier, turn),
                       sampling=Sampling(temperature=0.0, max_tokens=16), adapter=adapter,
                       tokens=TokenCount(text=10), notes=(),
                       media_files=tuple((m.sha256, str(p)) for m, p in zip(media, files,
                                                                           strict=True)))


def stats_for(request: ChatRequest, tokens: int = 16) -> Any:
    recorder = StatsRecorder()
    for _ in range(tokens):
        recorder.tokens(1)
    return recorder.finish(engine="embedded", adapter=request.adapter, finish_reason="length",
                           prompt_tokens=10, prompt_text_tokens=10, prompt_image_tokens=0,
                           prompt_audio_tokens=0)


def record_for(text: str, files: tuple[Path, ...] = (), *, answer: str = "an answer",
               origin: str = "chat", **links: Any) -> AnswerRecord:
    request = request_with(text, files)
    return build_record(request, answer, stats_for(request), INFO, origin=origin, **links)


async def answer_of(engine: Any, message: Any, sampling: Sampling, history: Any = (),
                    system: str = "Be brief.") -> Any:
    """The final update of a real answer (text, stats and the request)."""
    request = await answer_stream.plan(engine, list(history), message, system, sampling)
    return await answer_stream.final_update(engine, request)
