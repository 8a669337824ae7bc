"""What the benchmark asks for, the media it uses, and how results are summarised."""

from __future__ import annotations

import io
import itertools
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from PIL import Image, ImageDraw

from phi4ui.core.generation_settings import DEFAULT_SYSTEM
from phi4ui.core.stats import percentile

KINDS = ("text", "image", "audio")
SYSTEM = DEFAULT_SYSTEM
QUESTIONS = {
    "text": "Request {i}: write a short story about a lighthouse keeper.",
    "image": "Request {i}: describe this image in detail.",
    "audio": "Request {i}: transcribe the audio clip.",
}


# A message on the page, as the benchmark's people send it: the benchmark's own "clear" (each
# message starts a new conversation), the accept step (from pressing Enter to the chat
# showing the message), the answer's start (from there to the page's engine request, plus the
# first text's way back: the person's first token less the accept step and the page's own
# first token time) and, on a page that has one, a finishing step after the last token (the
# app's answer step now ends the answer itself; earlier versions had one).
PAGE_STEPS = ("clear", "accept", "answer start", "finish")


@dataclass(frozen=True)
class Scenario:
    kind: str
    users: int
    requests_per_user: int
    output_tokens: int
    # The realistic load (arrival_s > 0): people arrive as a Poisson process with this mean
    # gap, and think for an exponential time of mean think_s between their messages.
    arrival_s: float = 0.0
    think_s: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.users}{'p-realistic' if self.arrival_s else 'u'}"


@dataclass
class RequestTiming:
    """One request as the client saw it, in seconds from its own start."""

    ttft: float | None
    token_gaps: list[float]  # per token; an update carrying k tokens adds k equal gaps
    tokens: int
    started: float
    ended: float
    error: str = ""  # set for any answer that is not a full one
    largest_gap: float | None = None  # the longest wait between two updates of the answer
    # The page's own time to first token, from its engine request (its statistics line):
    # the rest of `ttft` is the page's accept step, the answer step's start and the update.
    app_ttft: float | None = None
    # From the first token to the last, as the client saw them.
    streaming_s: float | None = None
    # The page's steps around the answer, as the client timed them (see `PAGE_STEPS`).
    page_steps_s: dict[str, float] = field(default_factory=dict)
    # The answer's mean time per token on the engine core's own clock (vLLM's first and last
    # token stamps), and as the page process received the tokens (its statistics line): with
    # `streaming_s` as the client saw it, they tell a slower engine from a lagging page.
    engine_gap: float | None = None
    page_gap: float | None = None


@dataclass
class ScenarioResult:
    path: str
    scenario: Scenario
    requests: list[RequestTiming] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ok = [r for r in self.requests if not r.error]
        ttfts = [r.ttft for r in ok if r.ttft is not None]
        app_ttfts = [r.app_ttft for r in ok if r.app_ttft is not None]
        gaps = [g for r in ok for g in r.token_gaps]
        largest = [r.largest_gap for r in ok if r.largest_gap is not None]
        window = (max(r.ended for r in ok) - min(r.started for r in ok)) if ok else 0.0
        tokens = sum(r.tokens for r in ok)
        return {
            "path": self.path, **asdict(self.scenario), "requests": len(self.requests),
            "errors": len(self.requests) - len(ok),
            "first_error": next((r.error for r in self.requests if r.error), ""),
            "ttft_p50_ms": _ms(percentile(ttfts, 50)), "ttft_p95_ms": _ms(percentile(ttfts, 95)),
            "ttft_p99_ms": _ms(percentile(ttfts, 99)),
            **({"app_ttft_p50_ms": _ms(percentile(app_ttfts, 50))} if app_ttfts else {}),
            "itl_p50_ms": _ms(percentile(gaps, 50)), "itl_p95_ms": _ms(percentile(gaps, 95)),
            "largest_gap_p50_ms": _ms(percentile(largest, 50)),
            "largest_gap_p95_ms": _ms(percentile(largest, 95)),
            "largest_gap_max_ms": _ms(max(largest, default=None)),
            **_gaps_by_clock(ok),
            "total_output_tokens": tokens, "in_engine_mean": _in_engine_mean(ok, window),
            **({"page_steps_p50_ms": steps} if (steps := _page_steps(ok)) else {}),
            "aggregate_tok_s": round(tokens / window, 1) if window > 0 else None,
        }


def _gaps_by_clock(requests: list[RequestTiming]) -> dict[str, float | None]:
    """The p50 over answers of each answer's mean time per token, on each clock that has it:
    the engine core's, the page process's and the client's."""
    client = [r.streaming_s / (r.tokens - 1) for r in requests
              if r.streaming_s is not None and r.tokens > 1]
    engine = [r.engine_gap for r in requests if r.engine_gap is not None]
    page = [r.page_gap for r in requests if r.page_gap is not None]
    return {"answer_gap_client_p50_ms": _ms(percentile(client, 50)),
            "engine_spans_past_wait": sum(1 for r in requests if _engine_span_past_wait(r)),
            **({"answer_gap_engine_p50_ms": _ms(percentile(engine, 50))} if engine else {}),
            **({"answer_gap_page_p50_ms": _ms(percentile(page, 50))} if page else {})}


def _engine_span_past_wait(request: RequestTiming) -> bool:
    """Whether the engine's first-to-last token span is longer than the client waited for the
    whole answer: impossible for a clock read right, as the engine made the tokens in between."""
    if request.engine_gap is None:
        return False
    return request.engine_gap * (request.tokens - 1) > request.ended - request.started


def engine_gap(decode_s: float | None, tokens: int) -> float | None:
    """An answer's mean time per token from vLLM's decode time (first token to last)."""
    return decode_s / (tokens - 1) if decode_s is not None and tokens > 1 else None


def _in_engine_mean(requests: list[RequestTiming], window: float) -> float | None:
    """How many answers the engine held on average over the window: each answer counts
    from its engine request (the page's own first token time, where the page reports it,
    else the client's) to its last token. A front end whose people spend time between
    answers outside the engine leaves its batch emptier than the people count."""
    spans = []
    for r in requests:
        waited = r.app_ttft if r.app_ttft is not None else r.ttft
        if waited is not None and r.streaming_s is not None:
            spans.append(waited + r.streaming_s)
    return round(sum(spans) / window, 1) if spans and window > 0 else None


def _page_steps(requests: list[RequestTiming]) -> dict[str, float | None]:
    """Each page step's p50 over the answers that timed it."""
    return {step: _ms(percentile([r.page_steps_s[step] for r in requests
                                  if step in r.page_steps_s], 50))
            for step in PAGE_STEPS if any(step in r.page_steps_s for r in requests)}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def token_gaps(update_times: list[float], tokens: int) -> list[float]:
    """Per-token gaps from the times an answer grew, when only its final token count is known.

    The first update carries the first token; the others share the remaining
    tokens evenly (the app sends one update per 50 ms at most), so each interval
    stands for its gap divided by the tokens it carried.
    """
    if len(update_times) < 2 or tokens < 2:
        return []
    per_update = (tokens - 1) / (len(update_times) - 1)
    return [(after - before) / per_update
            for before, after in itertools.pairwise(update_times)]


def largest_gap(update_times: list[float]) -> float | None:
    return max((b - a for a, b in itertools.pairwise(update_times)), default=None)


def scenarios(kinds: list[str], users: list[int], requests_per_user: int,
              output_tokens: int) -> list[Scenario]:
    return [Scenario(kind, n, requests_per_user, output_tokens) for kind in kinds for n in users]


# ---------------------------------------------------------------- media

def make_media(folder: Path) -> dict[str, Path]:
    """A 640x480 PNG and a 5 s WAV for the requests; a 12 MP JPEG and a 60 s MP3 for
    the media-preparation timing."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"image": folder / "scene.png", "audio": folder / "clip-5s.wav",
             "photo_12mp": folder / "photo-12mp.jpg", "speech_60s": folder / "speech-60s.mp3"}
    synthetic_photo(640, 480).save(paths["image"])
    soundfile.write(paths["audio"], speechlike(5.0, 16_000), 16_000)
    synthetic_photo(4000, 3000).save(paths["photo_12mp"], quality=90)
    soundfile.write(paths["speech_60s"], speechlike(60.0, 44_100), 44_100, format="MP3")
    return paths


def synthetic_photo(width: int, height: int) -> Image.Image:
    """Smooth gradients and shapes with mild noise: compresses and decodes like a photo."""
    x = np.linspace(0, 1, width, dtype=np.float32)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    rng = np.random.default_rng(7)
    red = 255 * (0.5 + 0.5 * np.sin(6 * x + 3 * y))
    green = 255 * np.broadcast_to(y, (height, width))
    blue = 255 * (0.5 + 0.5 * np.cos(4 * x * y * math.pi))
    pixels = np.stack([red, green, blue], axis=-1) + rng.normal(0, 6, (height, width, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for i in range(12):
        box = (width * i // 13, height // 4, width * i // 13 + width // 10, height * 3 // 4)
        draw.ellipse(box, outline=(255, 255, 255), width=max(2, width // 400))
    return image


def speechlike(seconds: float, rate: int) -> np.ndarray:
    """Amplitude-modulated harmonics: a voice-like signal with syllable rhythm."""
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    pitch = 140 + 20 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (0.2 * voice * syllables).astype(np.float32)


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@dataclass(frozen=True)
class Workspace:
    """What a benchmark run starts from: where results go, a scratch folder, the app's
    flags (tiny checkpoint unless a model is given) and the media files."""

    out: Path
    work: Path
    model: str
    app_args: list[str]
    media: dict[str, str]


def prepare_workspace(out: str, model: str, max_model_len: int, max_num_seqs: int,
                      prefix: str, extra_app_args: list[str] | None = None) -> Workspace:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    out_path = Path(out)
    out_path.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix))
    model = model or tiny_checkpoint(work)
    app_args = ["--model", model, "--max-model-len", str(max_model_len),
                "--max-num-seqs", str(max_num_seqs), "--cpu-kv-cache-gib", "2",
                *(extra_app_args or [])]
    media = {k: str(v) for k, v in make_media(work / "media").items()}
    return Workspace(out_path, work, model, app_args, media)


def tiny_checkpoint(work: Path) -> str:
    """Built in `work`, or kept in PHI4UI_TEST_CACHE between runs, as the tests keep it."""
    from phi4ui.tinymodel import TINY, ensure_checkpoint

    cache = Path(os.environ.get("PHI4UI_TEST_CACHE") or work / "checkpoints")
    return str(ensure_checkpoint(cache, TINY, dynamic_hd=4))
