"""Evaluation cases from a JSONL or CSV file, checked one by one.

A case is a prompt, optional image and audio files (paths relative to the case
file, or absolute), an optional expected answer and tags. A problem with the
file as a whole (unreadable, no `prompt` column, too many cases for the page)
raises `CaseFileError`; a problem with one case (a malformed line, text that is
not text such as a lone surrogate or a NUL, a prompt longer than the page takes,
a missing file) becomes that case's `error`, shown in the results, and the others
run.

Cases uploaded in the page name only files uploaded with them: `read_cases(...,
confine_to=staging_folder)` refuses absolute paths and paths that lead out of that
folder, with the same message whether such a file exists or not. The command line
passes no `confine_to`, so its cases may name any file its user can read.

JSONL, one object per line:
    {"id": "cat-1", "prompt": "What animal is this?", "image": "img/cat.png",
     "expected": "cat", "tags": ["vision"]}
`image` and `audio` take a path or a list of paths. CSV: a header with `prompt`
and any of `id, image, audio, expected, tags, task, pattern`; several paths or tags
in one cell are separated by `;`.

`task` (transcription, translation, ocr, vqa) chooses the case's metrics; without
it a tag of that name (or `asr`) does, and otherwise the expected answer is looked
for in the answer (see `phi4ui.evaluation.metrics`). In JSONL `expected` may be a
list of accepted answers. `pattern`, a regular expression, is checked against the
answer as well.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi4ui.core.conversation import MAX_MESSAGE_CHARS
from phi4ui.core.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES
from phi4ui.errors import BadInput
from phi4ui.evaluation.archives import CheckedZip, Limits
from phi4ui.evaluation.case_media import MediaFinder, shown
from phi4ui.evaluation.metrics import check_pattern

PAGE_MAX_CASES = 1000  # the page's limit; the command line streams any number
COLUMNS = ("id", "prompt", "image", "audio", "expected", "tags", "task", "pattern")
JSONL_FIELDS = (*COLUMNS, "images", "audios")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
# A cell may hold a whole prompt; the csv module's own limit (128 KiB) would refuse the
# file as a whole where the page means to refuse that one case.
CSV_MAX_CELL_CHARS = 4 * MAX_MESSAGE_CHARS
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class CaseFileError(BadInput):
    """The case file as a whole cannot be used."""


@dataclass(frozen=True)
class Case:
    position: int  # 1-based, in file order
    where: str  # "line 7" (JSONL) or "row 7" (CSV), for messages
    id: str
    prompt: str = ""
    images: tuple[str, ...] = ()  # as the case file names them, for showing
    audios: tuple[str, ...] = ()
    expected: str | None = None  # the first accepted answer
    tags: tuple[str, ...] = ()
    error: str | None = None
    files: tuple[str, ...] = ()  # the images then the audios, found: the paths to open
    also_expected: tuple[str, ...] = ()  # further accepted answers
    task: str = ""  # as the file names it; `metrics.resolve_task` decides
    pattern: str | None = None

    @property
    def expected_answers(self) -> tuple[str, ...]:
        return ((self.expected,) if self.expected else ()) + self.also_expected


@dataclass(frozen=True)
class CaseFile:
    path: Path
    cases: list[Case]
    notes: tuple[str, ...] = ()
    source: str = ""  # the case file as shown: relative to the uploads in the page

    @property
    def invalid(self) -> int:
        return sum(case.error is not None for case in self.cases)


def read_cases(path: str | Path, *, max_cases: int | None = None,
               loose_media: bool = False, confine_to: Path | None = None) -> CaseFile:
    """Reads and checks every case. `loose_media`: a relative path that does not exist is
    also looked for by its file name beside the case file (uploads arrive flattened).
    `confine_to`: media must be files inside this folder (the page's uploads)."""
    path = Path(path)
    text = _text_of(path)
    reader = _jsonl if path.suffix.lower() in JSONL_SUFFIXES else _csv
    raw, notes = reader(text, path.name, max_cases)
    finder = MediaFinder(path.parent, loose_media, confine_to)
    cases = [_checked(case, finder) for case in raw]
    if not cases:
        raise CaseFileError(f"{path.name}: no cases in the file.")
    return CaseFile(path, cases, tuple(notes), _source_of(path, confine_to))


def _source_of(path: Path, confine_to: Path | None) -> str:
    if confine_to is None:
        return str(path)
    try:
        return path.resolve().relative_to(confine_to.resolve()).as_posix()
    except ValueError:
        return path.name


def _text_of(path: Path) -> str:
    if path.suffix.lower() not in (*JSONL_SUFFIXES, ".csv"):
        raise CaseFileError(f"{path.name}: cases come in a .jsonl or .csv file.")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise CaseFileError(f"{path}: no such file.") from None
    except OSError as error:
        raise CaseFileError(f"{path.name}: cannot be read ({error.strerror}).") from None
    except UnicodeDecodeError as error:
        raise CaseFileError(f"{path.name}: not UTF-8 text (byte {error.start} cannot be "
                            "decoded); save it as UTF-8.") from None


def _check_count(count: int, name: str, max_cases: int | None) -> None:
    if max_cases is not None and count > max_cases:
        raise CaseFileError(
            f"{name} holds {count:,} cases; the page runs at most {max_cases:,} at a time. "
            f"Split the file, or run all of it from the command line: "
            f"python -m phi4ui batch {name} --out results/")


# ---------------------------------------------------------------- JSONL

def _jsonl(text: str, name: str, max_cases: int | None) -> tuple[list[Case], list[str]]:
    # Lines end at "\n" only: str.splitlines() also splits at U+2028, U+0085 and others,
    # which JSON allows unescaped inside a string.
    lines = [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    _check_count(len(lines), name, max_cases)
    unknown: set[str] = set()
    cases = []
    for position, (number, line) in enumerate(lines, 1):
        cases.append(_jsonl_case(position, number, line, unknown))
    notes = [f"ignored unknown field(s): {', '.join(sorted(unknown))} (known: "
             f"{', '.join(JSONL_FIELDS)})"] if unknown else []
    return cases, notes


def _jsonl_case(position: int, number: int, line: str, unknown: set[str]) -> Case:
    where = f"line {number}"
    try:
        item = json.loads(line)
    except ValueError as error:
        return Case(position, where, str(position),
                    error=f"{where}: not valid JSON ({error}); the line is skipped")
    if not isinstance(item, dict):
        return Case(position, where, str(position),
                    error=f"{where}: expected a JSON object like {{\"prompt\": \"...\"}}, "
                          f"got {type(item).__name__}")
    unknown.update(_printable(key) for key in set(item) - set(JSONL_FIELDS))
    try:
        return _case_of(position, where, item)
    except ValueError as error:
        return Case(position, where, _id_for_error(item.get("id"), position),
                    error=f"{where}: {error}")


def _id_for_error(value: Any, position: int) -> str:
    """The case's id where it is plain text, else its position."""
    try:
        return _text(value, "id") or str(position)
    except ValueError:
        return str(position)


def _case_of(position: int, where: str, item: Mapping[str, Any]) -> Case:
    return Case(
        position=position, where=where, id=_text(item.get("id"), "id") or str(position),
        prompt=_prompt(item.get("prompt")),
        images=_paths(item, "image") + _paths(item, "images"),
        audios=_paths(item, "audio") + _paths(item, "audios"),
        **_expected(item.get("expected")), tags=_list(item.get("tags"), "tags"),
        task=_text(item.get("task"), "task").strip().lower(),
        pattern=check_pattern(pattern) if (pattern := _text(item.get("pattern"), "pattern"))
        else None,
    )


def _expected(value: Any) -> dict[str, Any]:
    """`expected` and `also_expected` from one answer or a list of accepted answers."""
    answers = ([_text(item, "expected") for item in value] if isinstance(value, list)
               else [_text(value, "expected")])
    answers = [answer for answer in answers if answer]
    return {"expected": answers[0] if answers else None, "also_expected": tuple(answers[1:])}


def _prompt(value: Any) -> str:
    prompt = _text(value, "prompt")
    if len(prompt) > MAX_MESSAGE_CHARS:
        raise ValueError(f"the prompt is {len(prompt):,} characters long; at most "
                         f"{MAX_MESSAGE_CHARS:,} fit in one message. Shorten it or split it "
                         "into several cases")
    return prompt


def _text(value: Any, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _checked_text(value, field)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"'{field}' must be text, not {type(value).__name__}")


def _checked_text(value: str, field: str) -> str:
    """`value` unless it holds what no text file should: a lone surrogate (a JSON escape
    such as \\ud800 that is half of a character and cannot be encoded) or a NUL."""
    if (surrogate := _LONE_SURROGATE.search(value)) is not None:
        raise ValueError(f"'{field}' holds \\u{ord(surrogate[0]):04x} at character "
                         f"{surrogate.start() + 1:,}, half of a character that cannot be "
                         "stored or sent; write the character itself, or both halves of "
                         "its \\u escape pair")
    if (nul := value.find("\0")) >= 0:
        raise ValueError(f"'{field}' holds a NUL character at character {nul + 1:,}; remove "
                         "it (a NUL usually means the file is not plain UTF-8 text)")
    return value


def _printable(text: str) -> str:
    """`text` with any lone surrogate written as its escape, for notes and messages."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _paths(item: Mapping[str, Any], field: str) -> tuple[str, ...]:
    return _list(item.get(field), field, lower=False)


def _list(value: Any, field: str, *, lower: bool = True) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    items = value.split(";") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"expected text or a list of text, got {json.dumps(value)[:60]}")
    items = [_checked_text(item, field) for item in items]
    cleaned = (item.strip().lower() if lower else item.strip() for item in items)
    return tuple(item for item in cleaned if item)


# ---------------------------------------------------------------- CSV

def _csv(text: str, name: str, max_cases: int | None) -> tuple[list[Case], list[str]]:
    if csv.field_size_limit() < CSV_MAX_CELL_CHARS:  # process-wide; only ever raised
        csv.field_size_limit(CSV_MAX_CELL_CHARS)
    reader = csv.reader(io.StringIO(text), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((reader.line_num, row))
    except csv.Error as error:
        raise CaseFileError(f"{name}: not valid CSV at line {reader.line_num} ({error}).") \
            from None
    if not rows:
        raise CaseFileError(f"{name}: the file is empty.")
    header = [cell.strip().lower() for cell in rows[0][1]]
    if "prompt" not in header:
        raise CaseFileError(f"{name}: the header has no 'prompt' column (found: "
                            f"{', '.join(header) or 'nothing'}). The columns are: prompt "
                            "(required), id, image, audio, expected, tags, task, pattern.")
    _check_count(len(rows) - 1, name, max_cases)
    ignored = [column for column in header if column not in COLUMNS]
    cases = [_csv_case(position, number, header, row)
             for position, (number, row) in enumerate(rows[1:], 1)]
    notes = [f"ignored column(s): {', '.join(ignored)}"] if ignored else []
    return cases, notes


def _csv_case(position: int, number: int, header: list[str], row: list[str]) -> Case:
    where = f"row {number}"
    if len(row) > len(header):
        return Case(position, where, str(position),
                    error=f"{where}: {len(row)} cells but the header has {len(header)} "
                          "columns (a comma inside an unquoted cell?)")
    item = {column: cell.strip() or None for column, cell in zip(header, row, strict=False)}
    try:
        return _case_of(position, where, item)
    except ValueError as error:
        return Case(position, where, _id_for_error(item.get("id"), position),
                    error=f"{where}: {error}")


# ---------------------------------------------------------------- checks

def _checked(case: Case, finder: MediaFinder) -> Case:
    if case.error:
        return case
    if not case.prompt.strip() and not case.images and not case.audios:
        return _failed(case, "no prompt and no image or audio")
    try:
        images = tuple(finder.find(p, "image", IMAGE_SUFFIXES) for p in case.images)
        audios = tuple(finder.find(p, "audio", AUDIO_SUFFIXES) for p in case.audios)
    except ValueError as error:
        return _failed(case, str(error))
    return dataclasses.replace(case, files=images + audios)


def _failed(case: Case, reason: str) -> Case:
    return dataclasses.replace(case, error=f"{case.where}: {reason}")


# ---------------------------------------------------------------- uploads

def stage_upload(paths: Sequence[str | Path], folder: Path, *,
                 limits: Limits | None = None) -> Path:
    """Puts uploaded files (a case file with its media, or one zip of them) in `folder`,
    which must be empty, and returns the case file. A zip is checked and unpacked under
    `limits` (see `phi4ui.evaluation.archives`)."""
    uploads = [Path(p) for p in paths]
    if len(uploads) == 1 and uploads[0].suffix.lower() == ".zip":
        _unzip(uploads[0], folder, limits)
    else:
        for upload in uploads:
            shutil.copyfile(upload, folder / _plain_name(str(upload)))
    found = sorted(p for p in folder.rglob("*")
                   if p.suffix.lower() in (*JSONL_SUFFIXES, ".csv") and p.is_file())
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise CaseFileError(f"Upload exactly one .jsonl or .csv case file with its media "
                            f"(or one .zip holding them); found {names}.")
    return found[0]


def _unzip(archive_path: Path, folder: Path, limits: Limits | None) -> None:
    try:
        with CheckedZip(archive_path, limits) as archive:
            archive.extract_all(folder)
    except zipfile.BadZipFile:
        raise CaseFileError(f"{archive_path.name}: not a valid zip file.") from None


def _plain_name(path: str) -> str:
    """An uploaded file's own name, never a path."""
    plain = Path(path.replace("\\", "/")).name
    if plain in ("", ".", ".."):
        raise CaseFileError(f"'{shown(path)}' is not a usable file name; rename the file.")
    return plain
