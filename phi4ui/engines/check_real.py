"""One command for whoever has the real weights: do the app's token counts and adapter
choices hold on the real model?

    python -m phi4ui check-real                     # the pinned revision in the HF cache
    python -m phi4ui check-real --model /models/phi4mm
    python -m phi4ui check-real --engine remote --base-url http://gpu-box:8000/v1

It starts the configured engine exactly as the app does, then sends one text, one image,
one audio and one image+audio request, each planned as the page plans it, and checks
that the prompt tokens the engine reports are the planned ones and that the engine ran
the adapter the planner chose. It prints a line a request and exits 1 on any mismatch,
3 when the engine does not start. `--plan-dynamic-hd` plans images with another
`dynamic_hd` than the engine's, to see a mismatch caught.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from PIL import Image

from phi4ui.core import answer_stream
from phi4ui.core.chat import ChatRequest, Sampling
from phi4ui.core.engine import Engine, Finished
from phi4ui.core.generation_settings import DEFAULT_SYSTEM
from phi4ui.core.media import MediaLimits
from phi4ui.core.stats import RequestStats
from phi4ui.errors import Phi4UIError

SYSTEM = DEFAULT_SYSTEM
# A few greedy tokens: enough to see the adapter run, quick on any machine.
CHECK_SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_tokens=8)
# 1200x900 is cut into 3x3 crops from dynamic_hd 9 up and fewer below, so its cost
# shows whether the planner and the engine agree on dynamic_hd.
IMAGE_SIZE = (1200, 900)
AUDIO_SECONDS = 3.0
CASES = {  # name -> (attachments, question, the adapter that must run)
    "text": ((), "Write one sentence about the sea.", None),
    "image": (("image",), "What is shown in this image?", "vision"),
    "audio": (("audio",), "Transcribe the audio clip.", "speech"),
    "image+audio": (("image", "audio"), "Does the audio describe the image?", "vision"),
}


@dataclass(frozen=True)
class Outcome:
    name: str
    planned: int
    counted: int
    adapter: str | None  # the planner's choice
    card_adapter: str | None  # the model card's rule: vision with any image, speech for audio
    ran: tuple[str, ...] | None  # adapters the engine reports running; None: not reported

    @property
    def problems(self) -> list[str]:
        found = []
        if self.planned != self.counted:
            found.append(f"planned {self.planned:,} prompt tokens, the engine counted "
                         f"{self.counted:,}")
        if self.adapter != self.card_adapter:
            found.append(f"adapter {self.adapter or 'none'} chosen where the model card's rule "
                         f"gives {self.card_adapter or 'none'}")
        expected = (self.adapter,) if self.adapter else ()
        if self.ran is not None and tuple(sorted(self.ran)) != expected:
            found.append(f"adapter {_names(expected)} chosen, the engine ran {_names(self.ran)}")
        return found

    def line(self) -> str:
        ran = "not reported" if self.ran is None else _names(self.ran)
        verdict = "OK" if not self.problems else "MISMATCH: " + "; ".join(self.problems)
        return (f"{self.name:<12} planned {self.planned:>6,}  engine {self.counted:>6,}  "
                f"adapter {_names((self.adapter,) if self.adapter else ())} (ran: {ran})  "
                f"{verdict}")


def _names(adapters: Sequence[str]) -> str:
    return ", ".join(adapters) or "none"


class _PlannedWith:
    """The engine as the planner sees it, with images costed at another `dynamic_hd`."""

    def __init__(self, engine: Engine, dynamic_hd: int) -> None:
        self._engine = engine
        self._dynamic_hd = dynamic_hd

    @property
    def media_limits(self) -> MediaLimits:
        return replace(self._engine.media_limits, dynamic_hd=self._dynamic_hd)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def write_media(folder: Path) -> dict[str, str]:
    """A generated photo-sized image and a spoken-length tone, as files the page would get."""
    rows = np.linspace(0, 255, IMAGE_SIZE[1], dtype=np.uint8)[:, None]
    gradient = np.broadcast_to(rows, (IMAGE_SIZE[1], IMAGE_SIZE[0]))
    image = Image.merge("RGB", [Image.fromarray(np.ascontiguousarray(gradient))] * 3)
    image_path = folder / "check.png"
    image.save(image_path)
    t = np.arange(int(AUDIO_SECONDS * 16_000)) / 16_000
    audio_path = folder / "check.wav"
    soundfile.write(audio_path, (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32), 16_000)
    return {"image": str(image_path), "audio": str(audio_path)}


async def run_case(engine: Engine, planner: Any, name: str, media: dict[str, str]) -> Outcome:
    kinds, question, card_adapter = CASES[name]
    message = {"text": question, "files": [media[kind] for kind in kinds]}
    request = await answer_stream.plan(planner, [], message, SYSTEM, CHECK_SAMPLING)
    steps_before = _adapter_steps(engine)
    stats = await _answer(engine, request)
    return Outcome(name=name, planned=request.tokens.total, counted=stats.prompt_tokens,
                   adapter=request.adapter, card_adapter=card_adapter,
                   ran=_adapters_ran(engine, stats, steps_before))


async def _answer(engine: Engine, request: ChatRequest) -> RequestStats:
    finished = None
    async for event in engine.stream(request):
        if isinstance(event, Finished):
            finished = event
    if finished is None:
        raise Phi4UIError("the engine's answer ended without its statistics")
    return finished.stats


def _adapter_steps(engine: Engine) -> dict[str, int] | None:
    steps = getattr(engine, "adapter_steps", None)
    return steps() if callable(steps) else None


def _adapters_ran(engine: Engine, stats: RequestStats,
                  steps_before: dict[str, int] | None) -> tuple[str, ...] | None:
    """The embedded engine counts scheduler steps per adapter; a remote server's /metrics
    says which adapters ran during the request (None where it has no metrics)."""
    steps_after = _adapter_steps(engine)
    if steps_before is not None and steps_after is not None:
        return tuple(sorted(name for name, steps in steps_after.items()
                            if steps > steps_before.get(name, 0)))
    if stats.snapshot is None or "KV-cache use" in stats.missing:
        return None
    return tuple(sorted(stats.snapshot.running_adapters))


async def check(engine: Engine, plan_dynamic_hd: int | None) -> list[Outcome]:
    planner = _PlannedWith(engine, plan_dynamic_hd) if plan_dynamic_hd else engine
    with tempfile.TemporaryDirectory(prefix="phi4ui-check-") as folder:
        media = write_media(Path(folder))
        return [await run_case(engine, planner, name, media) for name in CASES]


def header(engine: Engine, plan_dynamic_hd: int | None) -> list[str]:
    info = engine.info
    source = f" ({info.dynamic_hd_source})" if info.dynamic_hd_source else ""
    lines = [f"model     {info.model}" + (f" @ {info.revision}" if info.revision else ""),
             f"engine    {info.kind}" + (f" on {info.device}" if info.device else ""),
             f"dynamic_hd {info.dynamic_hd}{source}",
             f"adapters  {', '.join(f'{k}: {v}' for k, v in info.adapters.items()) or 'none'}"]
    if info.random_weights:
        lines.append("weights   random (tiny test model): counts and adapters still apply")
    if plan_dynamic_hd:
        lines.append(f"planning images with dynamic_hd {plan_dynamic_hd} (--plan-dynamic-hd)")
    return lines
