"""Reproducibility bundles: recorded answers exported as one zip, and replayed.

A bundle holds `bundle.json` (every field of each record, with its ratings),
`media/<sha256><suffix>` (each image and audio file once) and `README.txt`.
Replaying rebuilds each record's request through the current engine's planner
and checks, before anything runs, that the rendered prompt and the media hashes
are exactly the recorded ones; then it streams a new answer.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from phi4ui import service
from phi4ui.chat import (
    Adapter,
    ChatRequest,
    MediaRef,
    Part,
    Sampling,
    Turn,
    plan_request,
    prompt_as_sent,
)
from phi4ui.engines.base import Engine
from phi4ui.errors import BadInput
from phi4ui.mediastore import MediaRecord
from phi4ui.recording import record, versions
from phi4ui.stats import RequestStats
from phi4ui.store import AnswerRecord, Recorded, Store, now

FORMAT = "phi4ui-bundle"
FORMAT_VERSION = 1
README = """phi4ui reproducibility bundle: {count} recorded answer(s) with their conversation,
media, sampling settings, engine, statistics and ratings (bundle.json; media/ holds each
image and audio file once, named by its SHA-256).

Replay it through the current engine (same prompt and media are checked first):
    python -m phi4ui.replay {name} [engine flags, as for app.py]
or upload it in the page's Review tab, under "Replay a bundle".
"""


class BundleError(BadInput):
    """The file is not a bundle this version can read."""


class ReplayMismatch(BadInput):
    """The current engine would not send the recorded prompt or media."""


# ---------------------------------------------------------------- export

def export_bundle(store: Store, answer_ids: Sequence[str], destination: Path) -> Path:
    """Writes the answers (oldest first) as a bundle zip at `destination`."""
    if not answer_ids:
        raise BadInput("There is no recorded answer to export yet.")
    records = sorted(store.answers(answer_ids), key=lambda r: r.created_at)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as archive:
        entries = [_entry(store, archive, record) for record in records]
        document = {"format": FORMAT, "format_version": FORMAT_VERSION, "exported_at": now(),
                    "exported_with": versions(), "records": entries}
        archive.writestr("bundle.json", json.dumps(document, indent=2, ensure_ascii=False))
        archive.writestr("README.txt", README.format(count=len(records),
                                                     name=destination.name))
    return destination


def _entry(store: Store, archive: zipfile.ZipFile, answer: AnswerRecord) -> dict[str, Any]:
    entry = dataclasses.asdict(answer)
    entry["media"] = [_add_media(archive, item) for item in answer.media]
    entry["ratings"] = [dataclasses.asdict(r) for r in store.ratings(answer.id)]
    return entry


def _add_media(archive: zipfile.ZipFile, item: MediaRecord) -> dict[str, Any]:
    name = f"media/{item.sha256}{Path(item.name).suffix.lower()}"
    kept = bool(item.source) and Path(item.source).is_file()
    if kept and name not in archive.namelist():
        archive.write(item.source, name)
    return {"sha256": item.sha256, "kind": item.kind, "name": item.name,
            "file": name if kept else None}


# ---------------------------------------------------------------- reading

@dataclass(frozen=True)
class Bundle:
    records: list[AnswerRecord]
    folder: Path  # where the media were extracted


def read_bundle(path: Path, folder: Path) -> Bundle:
    """Opens a bundle and extracts its media under `folder`; raises `BundleError`."""
    try:
        with zipfile.ZipFile(path) as archive:
            document = _document(archive, path.name)
            records = [_record_of(entry, archive, folder, path.name)
                       for entry in document["records"]]
    except zipfile.BadZipFile:
        raise BundleError(f"{path.name}: not a zip file, so not a phi4ui bundle.") from None
    except OSError as error:
        raise BundleError(f"{path.name}: cannot be read ({error.strerror}).") from None
    if not records:
        raise BundleError(f"{path.name}: the bundle holds no records.")
    return Bundle(records, folder)


def _document(archive: zipfile.ZipFile, name: str) -> dict[str, Any]:
    try:
        document = json.loads(archive.read("bundle.json"))
    except KeyError:
        raise BundleError(f"{name}: no bundle.json inside; is this a phi4ui bundle?") from None
    except ValueError as error:
        raise BundleError(f"{name}: bundle.json is not valid JSON ({error}).") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BundleError(f"{name}: bundle.json is not a {FORMAT} document.")
    if document.get("format_version", 0) > FORMAT_VERSION:
        raise BundleError(f"{name}: bundle format {document['format_version']} is newer than "
                          f"this phi4ui reads ({FORMAT_VERSION}); update phi4ui.")
    return document


def _record_of(entry: dict[str, Any], archive: zipfile.ZipFile, folder: Path,
               name: str) -> AnswerRecord:
    fields = {f.name for f in dataclasses.fields(AnswerRecord)}
    try:
        media = tuple(_extract(archive, item, folder) for item in entry["media"])
        values = {k: v for k, v in entry.items() if k in fields and k != "media"}
        values["notes"] = tuple(values.get("notes", ()))
        return AnswerRecord(**values, media=media)
    except (KeyError, TypeError) as error:
        raise BundleError(f"{name}: a record in bundle.json is incomplete ({error}).") from None


def _extract(archive: zipfile.ZipFile, item: dict[str, Any], folder: Path) -> MediaRecord:
    source = ""
    if item.get("file"):
        # Written under our own name for it, never the archive's path (no zip-slip).
        target = folder / item["sha256"] / Path(item["name"]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read(item["file"]))
        source = str(target)
    return MediaRecord(item["sha256"], item["kind"], item["name"], source)


# ---------------------------------------------------------------- replay

@dataclass(frozen=True)
class ReplayResult:
    original: AnswerRecord
    request: ChatRequest
    answer: str
    stats: RequestStats
    recorded: Recorded | None = None

    @property
    def same_answer(self) -> bool:
        return self.answer == self.original.answer


async def rebuild_request(engine: Engine, original: AnswerRecord) -> ChatRequest:
    """The recorded request, planned again by the current engine; raises `ReplayMismatch`
    unless the prompt and the media hashes are exactly the recorded ones."""
    files = {m.sha256: m.source for m in original.media}
    turns = [_turn(turn, files, original.id) for turn in original.turns]
    sources: dict[str, str] = {}
    prepared, _ = await service.prepare_turns(turns, engine.media_limits, sources)
    request = plan_request(original.system, prepared, sampling_of(original.sampling),
                           engine.prompt_limits, engine.count_text_tokens)
    adapter = cast(Adapter | None, original.adapter)
    request = dataclasses.replace(request, adapter=adapter, media_files=tuple(sources.items()))
    check_same(original, request)
    return request


def check_same(original: AnswerRecord, request: ChatRequest) -> None:
    prompt = prompt_as_sent(request)
    if prompt != original.prompt:
        at = next((i for i, (a, b) in enumerate(zip(prompt, original.prompt, strict=False))
                   if a != b), min(len(prompt), len(original.prompt)))
        raise ReplayMismatch(
            f"Record {original.id}: the prompt differs from the recorded one at character {at} "
            f"(recorded {original.prompt[at:at + 40]!r}, now {prompt[at:at + 40]!r}). "
            + _mismatch_advice(original, request, prompt))
    hashes = [m.sha256 for m in request.images] + [m.sha256 for m in request.audios]
    recorded = [m.sha256 for m in original.media if m.kind == "image"] + \
               [m.sha256 for m in original.media if m.kind == "audio"]
    if hashes != recorded:
        raise ReplayMismatch(f"Record {original.id}: the media differ from the recorded ones "
                             f"(recorded {_short(recorded)}, now {_short(hashes)}).")


def _mismatch_advice(original: AnswerRecord, request: ChatRequest, prompt: str) -> str:
    if request.text_guard.restore(prompt) == original.prompt:
        return ("It was recorded by an older version that let typed control tokens act as "
                "such; they are now sent as plain text, so it cannot be replayed exactly.")
    return ("Start the engine with the recorded limits (context length, images and audio per "
            "prompt).")


async def replay(engine: Engine, original: AnswerRecord, *,
                 store: Store | None = None) -> ReplayResult:
    request = await rebuild_request(engine, original)
    final = None
    async for update in service.answer(engine, request, interval_s=float("inf")):
        final = update
    assert final is not None and final.stats is not None
    recorded = None
    if store is not None:
        recorded = await record(store, request, final.text, final.stats, engine.info,
                                origin="replay", replay_of=original.id)
    return ReplayResult(original, request, final.text, final.stats, recorded)


async def replay_bundle(engine: Engine, bundle: Bundle, *, store: Store | None = None,
                        on_result: Callable[[ReplayResult | ReplayMismatch], None] | None = None,
                        ) -> list[ReplayResult | ReplayMismatch]:
    """Replays every record in turn; a record that does not match is reported, not run."""
    results: list[ReplayResult | ReplayMismatch] = []
    for original in bundle.records:
        try:
            result: ReplayResult | ReplayMismatch = await replay(engine, original, store=store)
        except ReplayMismatch as mismatch:
            result = mismatch
        results.append(result)
        if on_result:
            on_result(result)
    return results


def sampling_of(values: dict[str, Any]) -> Sampling:
    known = {f.name for f in dataclasses.fields(Sampling)}
    return Sampling(**{k: v for k, v in values.items() if k in known})


def _turn(turn: dict[str, Any], files: dict[str, str], record_id: str) -> Turn:
    parts: list[Part] = []
    for part in turn["parts"]:
        if part["type"] == "text":
            parts.append(part["text"])
            continue
        path = files.get(part["sha256"])
        if not path:
            raise ReplayMismatch(f"Record {record_id}: {part.get('name') or part['sha256']} was "
                                 "not kept when it was recorded (the media store was full), so "
                                 "this answer cannot be replayed.")
        parts.append(MediaRef(path))
    return Turn(turn["role"], tuple(parts))


def _short(hashes: Sequence[str]) -> str:
    return ", ".join(h[:12] for h in hashes) or "none"
