"""The cost of a message before it is sent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from phi4ui.core import cost_preview
from phi4ui.core.media import MediaLimits, prepare
from phi4ui.errors import BadInput
from tests.support.mediafiles import write_audio, write_image

LIMITS = MediaLimits(dynamic_hd=4)


def test_media_cost_counts_like_the_model(tmp_path: Path) -> None:
    files = [str(write_image(tmp_path, "a.png", size=(448, 448))),
             str(write_image(tmp_path, "b.png", size=(640, 480))),
             str(write_audio(tmp_path, "c.wav", seconds=3.0, rate=48_000))]
    cost = asyncio.run(cost_preview.media_cost(files, LIMITS))
    assert (cost.images, cost.audios) == (2, 1)
    assert cost.audio_seconds == pytest.approx(3.0)
    assert cost.audio_tokens == 38
    assert cost.text() == f"2 images · {cost.image_tokens:,} tokens; audio 3.0 s · 38 tokens"


def test_media_cost_names_a_file_that_cannot_be_used(tmp_path: Path) -> None:
    fake = tmp_path / "notes.wav"
    fake.write_text("not audio")
    with pytest.raises(BadInput, match=r"notes\.wav"):
        asyncio.run(cost_preview.media_cost([str(fake)], LIMITS))


def test_cost_lines() -> None:
    assert cost_preview.MediaCost().text() == ""
    assert cost_preview.prompt_text(1234, 16384) == "prompt so far ≈ 1,234 of 16,384 tokens"


@pytest.mark.engine
def test_describe_on_the_engine(embedded_engine: Any, engine_loop: Any, tmp_path: Path) -> None:
    image = str(write_image(tmp_path, "scene.png", size=(448, 448)))

    def describe(message, history=()):
        described = cost_preview.describe(embedded_engine, list(history), message, "Hi.")
        return engine_loop.run(described)

    assert describe({"text": "", "files": []}) == ""
    line = describe({"text": "What is this?", "files": [image]})
    assert line.startswith("1 image · ") and "prompt so far ≈ " in line and "of 4,096" in line
    too_many = describe({"text": "", "files": [image, image, image]})
    assert "⚠" in too_many and "at most 2" in too_many
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    assert describe({"text": "x", "files": [str(bad)]}).startswith("⚠ broken.png")


def test_audio_longer_than_the_card_recommends_gets_a_note_not_a_refusal(tmp_path: Path) -> None:
    long_clip = str(write_audio(tmp_path, "lecture.wav", seconds=45.0))
    at_limit = str(write_audio(tmp_path, "answer.wav", seconds=40.0))
    cost = asyncio.run(cost_preview.media_cost([long_clip], LIMITS))
    assert cost.audio_tokens == 563
    assert cost.advice == ("lecture.wav: 45 s long; the model card recommends at most 40 s for "
                           "speech recognition and translation, so a longer clip may be "
                           "transcribed less well (split it for those tasks)",)
    assert cost.text().endswith(f"; ℹ {cost.advice[0]}")
    # The same note goes with the prompt, so the answer shows it too.
    assert cost.advice[0] in prepare(long_clip, LIMITS).notes
    assert asyncio.run(cost_preview.media_cost([at_limit], LIMITS)).advice == ()
    assert not any("model card" in note for note in prepare(at_limit, LIMITS).notes)
