"""Reproducibility bundles: recorded answers exported as one zip, and read back.

A bundle holds `bundle.json` (every field of each record, with its ratings),
`media/<sha256><suffix>` (each image and audio file once) and `README.txt`.
`phi4ui.evaluation.replay` replays what `read_bundle` gives.

A bundle to replay comes from someone else, so reading one trusts nothing in it: the
zip goes through `phi4ui.evaluation.archives` (names, links, sizes, ratios), every field of
`bundle.json` that is used is checked for its type, and each medium is extracted
only from `media/<sha256><suffix>`, under a name phi4ui makes, and kept only if its
bytes have that SHA-256. A record's sampling settings are checked when it is replayed
(`phi4ui.evaluation.replay.sampling_of`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi4ui.core.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES
from phi4ui.errors import BadInput
from phi4ui.evaluation.archives import ArchiveRefused, CheckedZip, Limits
from phi4ui.evaluation.mediastore import MediaRecord
from phi4ui.evaluation.recording import versions
from phi4ui.evaluation.store import AnswerRecord, Store, now

FORMAT = "phi4ui-bundle"
FORMAT_VERSION = 1
README = """phi4ui reproducibility bundle: {count} recorded answer(s) with their conversation,
media, sampling settings, engine, statistics and ratings (bundle.json; media/ holds each
image and audio file once, named by its SHA-256).

Replay it through the current engine (same prompt and media are checked first):
    python -m phi4ui replay {name} [engine flags, as for app.py]
or upload it in the page's Review tab, under "Replay a bundle".
"""


class BundleError(BadInput):
    """The file is not a bundle this version can read."""


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


def read_bundle(path: Path, folder: Path, *, limits: Limits | None = None) -> Bundle:
    """Opens a bundle and extracts its media under `folder`; raises `BundleError`, and
    then leaves nothing of it in `folder`."""
    try:
        with CheckedZip(path, limits) as archive:
            document = _document(archive, path.name)
            media = _MediaReader(archive, folder, path.name)
            try:
                records = [_record_of(entry, number, media)
                           for number, entry in enumerate(document["records"], 1)]
            except BaseException:
                media.discard()
                raise
    except zipfile.BadZipFile:
        raise BundleError(f"{path.name}: not a zip file, so not a phi4ui bundle.") from None
    except ArchiveRefused as refused:
        raise BundleError(str(refused)) from None
    except OSError as error:
        raise BundleError(f"{path.name}: cannot be read ({error.strerror}).") from None
    if not records:
        raise BundleError(f"{path.name}: the bundle holds no records.")
    return Bundle(records, folder)


# ---------------------------------------------------------------- checking bundle.json

MAX_DOCUMENT_BYTES = 64 << 20  # bundle.json; thousands of long records fit
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MEDIA_FILE = re.compile(r"media/([0-9a-f]{64})(\.[a-z0-9]{1,8})")
_MEDIA_SUFFIXES = {"image": IMAGE_SUFFIXES, "audio": AUDIO_SUFFIXES}
_ROLES = ("user", "assistant")
_ADAPTERS = ("vision", "speech")
_NONE = type(None)
# field -> (the JSON types it may have, whether it must be there)
_RECORD_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": ((str,), True), "created_at": ((str,), True), "origin": ((str,), True),
    "system": ((str,), True), "turns": ((list,), True), "prompt": ((str,), True),
    "answer": ((str,), True), "notes": ((list,), False), "engine": ((dict,), True),
    "adapter": ((str, _NONE), True), "sampling": ((dict,), True), "stats": ((dict,), True),
    "versions": ((dict,), True), "media": ((list,), True),
    "parent_id": ((str, _NONE), False), "conversation_id": ((str,), False),
    "pair_id": ((str, _NONE), False), "replay_of": ((str, _NONE), False),
}
_TYPE_WORDS = {str: "text", list: "a list", dict: "an object", int: "a whole number",
               float: "a number", bool: "true or false", _NONE: "null"}


def _document(archive: CheckedZip, name: str) -> dict[str, Any]:
    try:
        document = json.loads(archive.read("bundle.json", MAX_DOCUMENT_BYTES))
    except KeyError:
        raise BundleError(f"{name}: no bundle.json inside; is this a phi4ui bundle?") from None
    except (ValueError, RecursionError) as error:
        raise BundleError(f"{name}: bundle.json is not valid JSON ({error}).") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BundleError(f"{name}: bundle.json is not a {FORMAT} document.")
    version = document.get("format_version", 0)
    if not is_json_type(version, (int,)) or not isinstance(document.get("records"), list):
        raise BundleError(f"{name}: bundle.json has no format_version number or no list of "
                          "records; is this a phi4ui bundle?")
    if version > FORMAT_VERSION:
        raise BundleError(f"{name}: bundle format {version} is newer than "
                          f"this phi4ui reads ({FORMAT_VERSION}); update phi4ui.")
    return document


def _record_of(entry: Any, number: int, media: _MediaReader) -> AnswerRecord:
    where = f"{media.bundle_name}: record {number} in bundle.json"
    if not isinstance(entry, dict):
        raise BundleError(f"{where} is not an object.")
    _check_fields(entry, where)
    _check_turns(entry["turns"], where)
    if entry["adapter"] not in (None, *_ADAPTERS):
        raise BundleError(f"{where}: 'adapter' must be vision, speech or null.")
    notes = entry.get("notes", [])
    if not all(isinstance(note, str) for note in notes):
        raise BundleError(f"{where}: 'notes' must be a list of text.")
    fields = {f.name for f in dataclasses.fields(AnswerRecord)}
    values = {k: v for k, v in entry.items() if k in fields and k not in ("media", "notes")}
    items = tuple(media.medium(item, where) for item in entry["media"])
    return AnswerRecord(**values, notes=tuple(notes), media=items)


def _check_fields(entry: dict[str, Any], where: str) -> None:
    for field, (kinds, required) in _RECORD_FIELDS.items():
        if field not in entry:
            if required:
                raise BundleError(f"{where} is incomplete: it has no '{field}'.")
        elif not is_json_type(entry[field], kinds):
            raise BundleError(f"{where}: '{field}' must be {_words(kinds)}, not "
                              f"{_words((type(entry[field]),))}.")
    known = {f.name for f in dataclasses.fields(AnswerRecord)}
    for field in known - set(_RECORD_FIELDS):  # fields added since: plain text only
        if field in entry and not is_json_type(entry[field], (str, _NONE)):
            raise BundleError(f"{where}: '{field}' must be text.")


def _check_turns(turns: list[Any], where: str) -> None:
    for number, turn in enumerate(turns, 1):
        at = f"{where}, turn {number}"
        if not isinstance(turn, dict) or turn.get("role") not in _ROLES \
                or not isinstance(turn.get("parts"), list):
            raise BundleError(f"{at} must be an object with a role (user or assistant) and a "
                              "list of parts.")
        for part in turn["parts"]:
            if not _is_part(part):
                raise BundleError(f"{at} has a part that is neither text nor an image or "
                                  "audio named by its SHA-256.")


def _is_part(part: Any) -> bool:
    if not isinstance(part, dict):
        return False
    if part.get("type") == "text":
        return isinstance(part.get("text"), str)
    return (part.get("type") in _MEDIA_SUFFIXES and _is_sha256(part.get("sha256"))
            and isinstance(part.get("name", ""), str))


def is_json_type(value: Any, kinds: tuple[type, ...]) -> bool:
    """Whether a value parsed from JSON has one of `kinds`."""
    if isinstance(value, bool):  # JSON's true is not a number
        return bool in kinds
    return isinstance(value, kinds)


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def _words(kinds: tuple[type, ...]) -> str:
    return " or ".join(_TYPE_WORDS.get(kind, kind.__name__) for kind in kinds)


class _MediaReader:
    """Extracts each medium once, to `<folder>/<sha256>/<display name><suffix>`, and only
    when its bytes have the SHA-256 it is named by."""

    def __init__(self, archive: CheckedZip, folder: Path, bundle_name: str) -> None:
        self.archive = archive
        self.folder = folder
        self.bundle_name = bundle_name
        self.extracted: dict[str, Path] = {}

    def medium(self, item: Any, where: str) -> MediaRecord:
        if not isinstance(item, dict) or not _is_sha256(item.get("sha256")) \
                or item.get("kind") not in _MEDIA_SUFFIXES \
                or not isinstance(item.get("name"), str):
            raise BundleError(f"{where}: a medium needs a sha256 (64 lowercase hex digits), a "
                              "kind (image or audio) and a name.")
        sha256, kind, name, file = item["sha256"], item["kind"], item["name"], item.get("file")
        if not file:
            return MediaRecord(sha256, kind, name, "")
        suffix = self._suffix_of(file, sha256, kind, where)
        if sha256 not in self.extracted:
            self.extracted[sha256] = self._extract(file, sha256, _file_name(name, suffix), where)
        return MediaRecord(sha256, kind, name, str(self.extracted[sha256]))

    def discard(self) -> None:
        for path in self.extracted.values():
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                path.parent.rmdir()

    def _suffix_of(self, file: Any, sha256: str, kind: str, where: str) -> str:
        match = _MEDIA_FILE.fullmatch(file) if isinstance(file, str) else None
        if match is None or match[1] != sha256 or match[2] not in _MEDIA_SUFFIXES[kind]:
            raise BundleError(f"{where}: the {kind} file must be media/{sha256}<suffix> with "
                              f"an {kind} suffix, not {str(file)[:100]!r}.")
        return match[2]

    def _extract(self, file: str, sha256: str, file_name: str, where: str) -> Path:
        target = self.folder / sha256 / file_name
        try:
            digest = self.archive.extract(file, target, self.folder)
        except KeyError:
            raise BundleError(f"{where}: {file} is listed but not in the zip.") from None
        if digest != sha256:
            target.unlink()
            target.parent.rmdir()
            raise BundleError(f"{where}: the bytes of {file} do not have the SHA-256 it is "
                              "named by (the file was changed after export); nothing was "
                              "replayed.")
        return target


def _file_name(display: str, suffix: str) -> str:
    """The display name as a plain file name (no folders, no odd characters), with the
    suffix of the file in the archive."""
    stem = Path(display.replace("\\", "/")).stem
    stem = re.sub(r"[^\w .()+-]", "_", stem).strip(" .")[:100]
    return (stem or "media") + suffix
