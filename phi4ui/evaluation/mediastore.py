"""The recorded media: each file kept once, by content hash, in a folder beside the database.

Layout: `<db>.media/ab/abcdef…(64 hex).png`. The folder has a size cap. When a
new file would pass it, files that no recorded answer refers to any more go
first, oldest first; if that is not enough, the new file is *not* kept and the
answer's record says so in its notes. Recorded answers never lose their media
to make room: a record that could be replayed yesterday can be replayed today.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from phi4ui.evaluation.rows import MediaRow, from_row, insert_sql, params


@dataclass(frozen=True)
class MediaRecord:
    """One medium of a recorded conversation; `source` is the file it was read from."""

    sha256: str
    kind: str  # "image" or "audio"
    name: str
    source: str = ""


@dataclass(frozen=True)
class _Candidate:
    media: MediaRecord
    data: bytes | None
    problem: str | None


class MediaStore:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes

    def path_of(self, relative: str) -> Path:
        return self.folder / relative

    def read(self, media: MediaRecord, conn: sqlite3.Connection) -> _Candidate:
        """Reads and checks a file before the write transaction, to keep that short."""
        if _kept(conn, media.sha256):
            return _Candidate(media, None, None)
        try:
            data = Path(media.source).read_bytes() if media.source else None
        except OSError:
            data = None
        if data is None:
            return _Candidate(media, None, f"{media.name}: not kept (its file is gone)")
        if hashlib.sha256(data).hexdigest() != media.sha256:
            return _Candidate(media, None, f"{media.name}: not kept (the file changed after "
                              "it was sent)")
        return _Candidate(media, data, None)

    def keep(self, conn: sqlite3.Connection, candidate: _Candidate,
             protected: set[str]) -> str | None:
        """Inside the write transaction: writes the file and its row, or returns why not."""
        media = candidate.media
        if candidate.problem or _kept(conn, media.sha256):
            return candidate.problem
        assert candidate.data is not None
        size = len(candidate.data)
        if not self._make_room(conn, size, protected):
            used = _used_bytes(conn)
            return (f"{media.name}: not kept (the media store holds {used / 1e6:.0f} of "
                    f"{self.max_bytes / 1e6:.0f} MB in files that recorded answers use; raise "
                    "--media-store-max-mb or delete old records)")
        relative = f"{media.sha256[:2]}/{media.sha256}{Path(media.name).suffix.lower()}"
        _write_atomically(self.path_of(relative), candidate.data)
        row = MediaRow(media.sha256, media.kind, media.name, relative, size,
                       datetime.now(UTC).isoformat(timespec="milliseconds"))
        conn.execute(insert_sql("media", MediaRow), params(row))
        return None

    def _make_room(self, conn: sqlite3.Connection, size: int, protected: set[str]) -> bool:
        used = _used_bytes(conn)
        if used + size <= self.max_bytes:
            return True
        for row in _unreferenced(conn):
            if row.sha256 in protected:
                continue
            self.forget(conn, row.sha256, row.path)
            used -= row.size
            if used + size <= self.max_bytes:
                return True
        return False

    def forget(self, conn: sqlite3.Connection, sha256: str, relative: str) -> None:
        conn.execute("DELETE FROM media WHERE sha256 = ?", (sha256,))
        self.path_of(relative).unlink(missing_ok=True)


def _kept(conn: sqlite3.Connection, sha256: str) -> bool:
    return conn.execute("SELECT 1 FROM media WHERE sha256 = ?", (sha256,)).fetchone() is not None


def _used_bytes(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(SUM(size), 0) FROM media").fetchone()[0])


def _unreferenced(conn: sqlite3.Connection) -> list[MediaRow]:
    rows = conn.execute(
        "SELECT * FROM media m WHERE NOT EXISTS "
        "(SELECT 1 FROM answer_media a WHERE a.sha256 = m.sha256) ORDER BY created_at"
    ).fetchall()
    return [from_row(MediaRow, row) for row in rows]


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
