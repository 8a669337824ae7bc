"""Planned prompt tokens are the engine's, wherever the text sits around the media.

The planner counts each medium as one special token between the text runs, because the
model's processor replaces a placeholder by special tokens before tokenizing. On the tiny
checkpoint, whose placeholders are plain text like the real vocabulary's (so that vLLM
finds some by their tokens and, where a neighbouring character merged into them, by the
decoded text), both engines must report exactly the planned count for: text before an
image, text after it, text between two media, text on both sides, and several turns.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from phi4ui.core import answer_stream
from phi4ui.core.engine import Engine, Finished
from phi4ui.engines.remote import RemoteEngine
from phi4ui.settings import load_settings
from phi4ui.tinymodel import AUDIO_PLACEHOLDER_ID, IMAGE_PLACEHOLDER_ID
from tests.support.enginehelpers import FIXED
from tests.support.mediafiles import write_audio, write_image
from tests.support.vllm_server import VllmServer

pytestmark = pytest.mark.engine


def user(*parts: Any) -> list[dict[str, Any]]:
    """One user turn of several parts, as Gradio's history holds it (a message each)."""
    return [{"role": "user", "content": part if isinstance(part, str) else {"path": part.path}}
            for part in parts]


class File:
    def __init__(self, path: Path) -> None:
        self.path = str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, File]:
    folder = tmp_path_factory.mktemp("layouts")
    return {"image": File(write_image(folder, "square.png", size=(300, 200))),
            "other": File(write_image(folder, "wide.png", size=(500, 180))),
            "audio": File(write_audio(folder, "speech.wav", seconds=1.5, rate=16_000))}


def layouts(files: dict[str, File]) -> dict[str, list[dict[str, Any]]]:
    image, other, audio = files["image"], files["other"], files["audio"]
    return {
        "text before an image": user("Look at this.", image),
        "text after an image": user(image, "What is it?"),
        "text on both sides": user("Look at this.", image, "What is it?"),
        "text between two media": user(image, "and then this recording:", audio),
        "text between two images": user(image, "versus", other, "which is wider?"),
        "several turns": [
            *user("First this.", image, "What colour?"),
            {"role": "assistant", "content": "Red, mostly."},
            *user(audio, "And what is said here?"),
            {"role": "assistant", "content": "Some words.\nTwo lines of them."},
            *user("Last:", other),
        ],
    }


LAYOUTS = ["text before an image", "text after an image", "text on both sides",
           "text between two media", "text between two images", "several turns"]


async def answer(engine: Engine, history: list[dict[str, Any]]) -> tuple[Any, Finished]:
    request = await answer_stream.plan(engine, history, None, "Be brief.", FIXED)
    finished = None
    async for event in engine.stream(request):
        if isinstance(event, Finished):
            finished = event
    assert finished is not None
    return request, finished


def check_counts(request: Any, finished: Finished) -> None:
    stats = finished.stats
    assert stats.prompt_tokens == request.tokens.total
    ids = finished.prompt_token_ids
    assert ids is not None and len(ids) == request.tokens.total
    assert ids.count(IMAGE_PLACEHOLDER_ID) == request.tokens.image
    assert ids.count(AUDIO_PLACEHOLDER_ID) == request.tokens.audio


@pytest.mark.parametrize("layout", LAYOUTS)
def test_embedded_engine_counts_as_planned(embedded_engine, engine_loop, files, layout):
    history = layouts(files)[layout]
    request, finished = engine_loop.run(answer(embedded_engine, history))
    check_counts(request, finished)


@pytest.fixture(scope="module")
def remote(vllm_server: VllmServer, engine_loop: Any) -> Iterator[RemoteEngine]:
    settings = load_settings(["--engine", "remote", "--base-url", vllm_server.base_url,
                              "--max-images", "2", "--max-audios", "2",
                              "--request-timeout", "300"], environ={})
    engine = RemoteEngine(settings, report_prompt_token_ids=True)
    try:
        engine_loop.run(engine.start())
        assert engine.status.state == "ready", engine.status.message
        yield engine
    finally:
        engine_loop.run(engine.close())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_remote_engine_counts_as_planned(remote, engine_loop, files, layout):
    history = layouts(files)[layout]
    request, finished = engine_loop.run(answer(remote, history))
    check_counts(request, finished)
