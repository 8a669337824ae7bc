"""Zip files from other people, read as hostile input.

Every zip phi4ui opens (a batch upload, a bundle to replay) goes through `CheckedZip`:

- before anything is read, the table of contents is bounded (its size on disk and its
  number of entries), and every entry is checked: a plain relative name (no absolute path,
  no `..`, no drive letter or backslash, no control character, no duplicate), a regular
  file or folder (no symbolic link, device or pipe, as the Unix mode in the external
  attributes says), stored or deflated (other methods decompress without a bound), not
  encrypted;
- bytes are unpacked in chunks and counted as they come, never trusting the sizes the
  archive declares: all entries together may unpack to at most `MAX_UNPACKED_BYTES`, one
  entry to at most `MAX_RATIO` times its compressed size (beyond `RATIO_FREE_BYTES`), and a
  read stops as soon as a cap is passed, deleting the file it was writing;
- files are written only inside the folder given, created exclusively and without
  following links, and `extract_all` clears that folder again if the archive is refused.

Nested archives are never opened: a zip inside a zip is just a file.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import BinaryIO

from phi4ui.errors import BadInput

MAX_ENTRIES = 2_000
MAX_UNPACKED_BYTES = 1 << 30  # all entries together: 1 GiB
MAX_RATIO = 200  # unpacked bytes per compressed byte, in one entry
RATIO_FREE_BYTES = 1 << 20  # small entries (a blank image) may compress better than that
DIRECTORY_BYTES_PER_ENTRY = 2048  # room in the table of contents for one entry's name
CHUNK_BYTES = 1 << 20
READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}


@dataclass(frozen=True)
class Limits:
    entries: int = MAX_ENTRIES
    unpacked_bytes: int = MAX_UNPACKED_BYTES
    ratio: int = MAX_RATIO


class ArchiveRefused(BadInput):
    """The archive breaks one of the rules above; nothing of it is kept."""


class CheckedZip:
    """A zip whose entries were all checked on opening; every read counts against the limits.

    Raises `zipfile.BadZipFile` when the file is not a zip at all, `ArchiveRefused` when it
    breaks a rule."""

    def __init__(self, path: Path, limits: Limits | None = None) -> None:
        self.name = path.name
        self.limits = limits or Limits()
        self.unpacked = 0
        with path.open("rb") as handle:
            _check_directory(handle, self.name, self.limits)
        self._zip = zipfile.ZipFile(path)
        try:
            self.entries = _checked_entries(self._zip, self.name, self.limits)
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> CheckedZip:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._zip.close()

    def read(self, name: str, max_bytes: int) -> bytes:
        """The entry's bytes; `KeyError` if there is none; refused past `max_bytes`."""
        buffer = io.BytesIO()
        self._copy(self.entries[name], buffer, max_bytes)
        return buffer.getvalue()

    def extract(self, name: str, target: Path, folder: Path) -> str:
        """Writes the entry to `target`, which must lie inside `folder` and not exist yet;
        returns the SHA-256 of its bytes. `KeyError` if there is no such entry."""
        info = self.entries[name]
        self._make_folder(target.parent, folder, name)
        try:
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                                 0o600)
        except OSError as error:  # e.g. a file and a folder of the same name
            raise self._cannot_unpack(name, error) from None
        try:
            with os.fdopen(descriptor, "wb") as out:
                return self._copy(info, out, self.limits.unpacked_bytes)
        except BaseException:
            target.unlink(missing_ok=True)
            raise

    def extract_all(self, folder: Path) -> None:
        """Unpacks every entry into `folder`, which must be empty; on refusal it is emptied
        again."""
        if any(folder.iterdir()):
            raise ValueError(f"{folder} is not empty")
        try:
            for name, info in self.entries.items():
                target = folder.joinpath(*PurePosixPath(name).parts)
                if info.is_dir():
                    self._make_folder(target, folder, name)
                else:
                    self.extract(name, target, folder)
        except BaseException:
            _empty(folder)
            raise

    def _make_folder(self, target: Path, folder: Path, name: str) -> None:
        _check_inside(target, folder)
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise self._cannot_unpack(name, error) from None
        _check_inside(target, folder)  # as made, links resolved

    def _cannot_unpack(self, name: str, error: OSError) -> ArchiveRefused:
        return ArchiveRefused(f"{self.name}: the entry '{name}' cannot be unpacked "
                              f"({error.strerror}); make the zip again.")

    def _copy(self, info: zipfile.ZipInfo, out: BinaryIO, max_bytes: int) -> str:
        by_ratio = max(info.compress_size * self.limits.ratio, RATIO_FREE_BYTES)
        digest = hashlib.sha256()
        written = 0
        try:
            with self._zip.open(info) as source:
                while chunk := source.read(CHUNK_BYTES):
                    written += len(chunk)
                    self.unpacked += len(chunk)
                    self._check_size(info.filename, written, by_ratio, max_bytes)
                    digest.update(chunk)
                    out.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise ArchiveRefused(f"{self.name}: the entry '{info.filename}' is damaged "
                                 f"({error}); make the zip again.") from None
        return digest.hexdigest()

    def _check_size(self, entry: str, written: int, by_ratio: int, max_bytes: int) -> None:
        if self.unpacked > self.limits.unpacked_bytes:
            raise ArchiveRefused(f"{self.name} unpacks to more than "
                                 f"{_size(self.limits.unpacked_bytes)}, the most phi4ui "
                                 "accepts; nothing of it was kept. Upload fewer or smaller "
                                 "files.")
        if written > by_ratio:
            raise ArchiveRefused(f"{self.name}: the entry '{entry}' unpacks to more than "
                                 f"{self.limits.ratio} times its compressed size, the most "
                                 "phi4ui accepts (a zip bomb?); nothing of the archive was "
                                 "kept.")
        if written > max_bytes:
            raise ArchiveRefused(f"{self.name}: the entry '{entry}' is larger than "
                                 f"{_size(max_bytes)}, the most phi4ui reads for it.")


# ---------------------------------------------------------------- the table of contents

_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")  # its Zip64 form


def _check_directory(handle: BinaryIO, name: str, limits: Limits) -> None:
    """Bounds the table of contents before `zipfile` loads all of it into memory."""
    found = _directory_size(handle)
    if found is None:
        return  # not a zip: zipfile says so
    entries, directory_bytes = found
    if entries > limits.entries or directory_bytes > limits.entries * DIRECTORY_BYTES_PER_ENTRY:
        raise ArchiveRefused(_too_many(name, entries, limits))


def _directory_size(handle: BinaryIO) -> tuple[int, int] | None:
    """(entries, bytes) of the central directory as the end record declares them."""
    end = handle.seek(0, os.SEEK_END)
    start = max(0, end - _END.size - 0xFFFF)  # the record, then a comment of up to 64 KiB
    handle.seek(start)
    tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _END.size:
        return None
    *_, entries, directory_bytes, _, _ = _END.unpack_from(tail, at)
    if entries != 0xFFFF and directory_bytes != 0xFFFFFFFF:
        return entries, directory_bytes
    locator_at = start + at - _END64_LOCATOR.size
    if locator_at >= 0:
        handle.seek(locator_at)
        signature, _, record_at, _ = _END64_LOCATOR.unpack(handle.read(_END64_LOCATOR.size))
        handle.seek(record_at)
        record = handle.read(_END64.size)
        if signature == b"PK\x06\x07" and record[:4] == b"PK\x06\x06" \
                and len(record) == _END64.size:
            fields = _END64.unpack(record)
            return fields[7], fields[8]
    return entries, directory_bytes  # Zip64 sizes without their record: refused as too large


def _checked_entries(archive: zipfile.ZipFile, name: str,
                     limits: Limits) -> dict[str, zipfile.ZipInfo]:
    members = archive.infolist()
    if len(members) > limits.entries:
        raise ArchiveRefused(_too_many(name, len(members), limits))
    entries: dict[str, zipfile.ZipInfo] = {}
    for info in members:
        problem = _problem_of(info)
        if problem:
            raise ArchiveRefused(f"{name}: the entry {info.orig_filename[:120]!r} {problem}; "
                                 "phi4ui unpacks only plain files under relative names, so "
                                 "nothing of the archive was used.")
        key = "/".join(PurePosixPath(info.filename).parts)
        if key in entries:
            raise ArchiveRefused(f"{name}: the entry '{key}' appears twice; make the zip "
                                 "again with each file once.")
        entries[key] = info
    declared = sum(info.file_size for info in members)
    if declared > limits.unpacked_bytes:
        raise ArchiveRefused(f"{name} would unpack to {_size(declared)}, more than "
                             f"{_size(limits.unpacked_bytes)}, the most phi4ui accepts. "
                             "Upload fewer or smaller files.")
    return entries


_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _problem_of(info: zipfile.ZipInfo) -> str | None:
    return _name_problem(info) or _type_problem(info)


def _name_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.orig_filename
    if info.filename != name or _CONTROL.search(name):
        return "has control characters in its name"
    if "\\" in name:
        return "uses backslashes, a Windows path"
    if name.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "names a drive"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return "climbs out of the archive's folder with '..'"
    if not parts:
        return "has no name"
    return None


def _type_problem(info: zipfile.ZipInfo) -> str | None:
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is a device, pipe or socket, not a file"
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.compress_type not in READABLE_METHODS:
        return (f"is compressed with method {info.compress_type}; phi4ui reads stored or "
                "deflated entries, what zip tools make by default")
    return None


# ---------------------------------------------------------------- helpers

def _check_inside(target: Path, folder: Path) -> None:
    if not target.resolve().is_relative_to(folder.resolve()):
        raise ArchiveRefused(f"'{target.name}' would be written outside its folder; the "
                             "archive was not used.")


def _empty(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _too_many(name: str, entries: int, limits: Limits) -> str:
    return (f"{name} holds {entries:,} entries (or a table of contents that large); phi4ui "
            f"accepts at most {limits.entries:,}. Upload fewer files.")


def _size(count: int) -> str:
    if count >= 1 << 30:
        return f"{count / (1 << 30):.1f} GiB"
    return f"{count / (1 << 20):.1f} MiB" if count >= 1 << 20 else f"{count:,} bytes"
