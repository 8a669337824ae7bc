"""A finished answer turned into a store record, with the versions that produced it.
The chat history marks recorded answers by id: see `phi4ui.core.history`."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib.metadata
import logging
import platform
import sqlite3
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phi4ui.core.answer_stream import AnswerUpdate
from phi4ui.core.audio import PreparedAudio
from phi4ui.core.chat import ChatRequest, Turn, prompt_as_sent
from phi4ui.core.engine import EngineInfo
from phi4ui.core.images import PreparedImage
from phi4ui.core.stats import RequestStats
from phi4ui.errors import Phi4UIError
from phi4ui.evaluation.mediastore import MediaRecord
from phi4ui.evaluation.store import AnswerRecord, Recorded, Store, now

log = logging.getLogger(__name__)
PACKAGES = ("vllm", "gradio", "transformers", "torch", "openai")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class RecordingFailed(Phi4UIError):
    """The answer was given but could not be written to the record."""


def build_record(request: ChatRequest, text: str, stats: RequestStats, info: EngineInfo, *,
                 origin: str, parent_id: str | None = None, pair_id: str | None = None,
                 replay_of: str | None = None, user: str = "") -> AnswerRecord:
    return AnswerRecord(
        id=uuid.uuid4().hex, created_at=now(), origin=origin, system=request.system,
        turns=turns_json(request.turns), prompt=prompt_as_sent(request),
        answer=text, notes=request.notes, engine=dataclasses.asdict(info),
        adapter=request.adapter, sampling=dataclasses.asdict(request.sampling),
        stats=stats.as_dict(), versions=versions(), media=media_of(request),
        parent_id=parent_id, pair_id=pair_id, replay_of=replay_of, user=user,
    )


async def record(store: Store, request: ChatRequest, text: str, stats: RequestStats,
                 info: EngineInfo, *, origin: str, parent_id: str | None = None,
                 pair_id: str | None = None, replay_of: str | None = None,
                 user: str = "") -> Recorded:
    """Writes the record off the event loop; raises `RecordingFailed` with a plain reason."""
    def write() -> Recorded:
        return add_answer(store, build_record(request, text, stats, info, origin=origin,
                                              parent_id=parent_id, pair_id=pair_id,
                                              replay_of=replay_of, user=user))

    return await asyncio.to_thread(write)


async def record_update(store: Store, info: EngineInfo, update: AnswerUpdate, *,
                        origin: str = "chat", parent_id: str | None = None,
                        user: str = "") -> Recorded:
    """Records the final `AnswerUpdate` of `service.answer` (the one with `.stats`)."""
    if update.stats is None or update.request is None:
        raise ValueError("only a finished answer (an update with stats) can be recorded")
    return await record(store, update.request, update.text, update.stats, info, origin=origin,
                        parent_id=parent_id, user=user)


def add_answer(store: Store, answer: AnswerRecord) -> Recorded:
    try:
        return store.add_answer(answer)
    except (sqlite3.Error, OSError) as error:
        log.exception("recording answer %s failed", answer.id)
        raise RecordingFailed(f"The answer was not recorded ({error}); it is still shown, "
                              "but cannot be rated or exported.") from error


def turns_json(turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """Turns with text as it is and media as references (kind, content hash, name)."""
    out = []
    for turn in turns:
        parts: list[dict[str, Any]] = []
        for part in turn.parts:
            if isinstance(part, str):
                parts.append({"type": "text", "text": part})
            elif isinstance(part, PreparedImage | PreparedAudio):
                parts.append({"type": _kind(part), "sha256": part.sha256, "name": part.name})
        out.append({"role": turn.role, "parts": parts})
    return out


def media_of(request: ChatRequest) -> tuple[MediaRecord, ...]:
    """Every medium of the request in prompt order, with the file it was read from."""
    files = dict(request.media_files)
    return tuple(MediaRecord(m.sha256, _kind(m), m.name, files.get(m.sha256, ""))
                 for turn in request.turns for m in turn.media)


def _kind(item: PreparedImage | PreparedAudio) -> str:
    return "image" if isinstance(item, PreparedImage) else "audio"


# ---------------------------------------------------------------- versions

@functools.cache
def versions() -> dict[str, str]:
    """phi4ui (with its git commit when run from a checkout), Python and the libraries."""
    found = {"phi4ui": _project_version(), "python": platform.python_version()}
    commit = _git_commit()
    if commit:
        found["phi4ui_commit"] = commit
    distributions = importlib.metadata.packages_distributions()
    for package in PACKAGES:
        for name in distributions.get(package, [package]):
            try:
                found[package] = importlib.metadata.version(name)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return found


def _project_version() -> str:
    try:
        return importlib.metadata.version("phi4ui")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        import tomllib

        text = (PROJECT_ROOT / "pyproject.toml").read_text()
        return str(tomllib.loads(text)["project"]["version"])
    except (OSError, KeyError, ValueError):
        return "unknown"


def _git_commit() -> str:
    if not (PROJECT_ROOT / ".git").exists():
        return ""
    try:
        result = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""
