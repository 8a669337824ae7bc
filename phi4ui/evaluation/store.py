"""The record of every answer, and the ratings on them: one SQLite file (WAL mode).

Opening a `Store` brings the file's schema up to date (`phi4ui.evaluation.migrations`).
Each thread gets its own connection; every write is one `BEGIN IMMEDIATE`
transaction, so an answer, its media and its batch case land together or not
at all, and whatever was committed survives the app being killed. Calls block
for milliseconds; from the event loop, run them with `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from phi4ui.errors import BadInput, Phi4UIError
from phi4ui.evaluation.mediastore import MediaRecord, MediaStore
from phi4ui.evaluation.migrations import migrate
from phi4ui.evaluation.review_query import ReviewFilter, ReviewRow, review_query
from phi4ui.evaluation.rows import (
    AnswerRow,
    BatchCaseRow,
    BatchRow,
    Rating,
    from_row,
    insert_sql,
    params,
)
from phi4ui.settings import Settings

Winner = Literal["left", "right", "tie"]
BUSY_TIMEOUT_S = 30.0


class RecordNotFound(Phi4UIError):
    """No recorded answer has this id (recording was off, or another database is open)."""


@dataclass(frozen=True)
class AnswerRecord:
    """Everything needed to understand and replay one answer."""

    id: str
    created_at: str
    origin: str  # chat, batch, side-by-side, replay
    system: str
    turns: list[dict[str, Any]]  # [{"role", "parts": [{"type": "text"|"image"|"audio", ...}]}]
    prompt: str  # the rendered Phi-4 prompt, placeholders included
    answer: str
    notes: tuple[str, ...]
    engine: dict[str, Any]  # EngineInfo
    adapter: str | None
    sampling: dict[str, Any]
    stats: dict[str, Any]  # RequestStats.as_dict()
    versions: dict[str, str]
    media: tuple[MediaRecord, ...] = ()
    parent_id: str | None = None
    conversation_id: str = ""  # set by the store: the first answer of the chain
    pair_id: str | None = None
    replay_of: str | None = None
    user: str = ""  # the login name of whoever asked; '' without a login


@dataclass(frozen=True)
class BatchAnswer:
    """What a batch case's recorded answer says, for scoring and comparing runs."""

    text: str
    model: str
    revision: str
    adapter: str | None
    engine_kind: str
    user: str


@dataclass(frozen=True)
class Recorded:
    answer_id: str
    notes: tuple[str, ...] = ()  # media that could not be kept


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Store:
    def __init__(self, path: str | Path, *, media_max_bytes: int = 2 * 1024**3) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.media = MediaStore(self.path.with_name(self.path.name + ".media"), media_max_bytes)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        migrate(self._conn())

    @classmethod
    def from_settings(cls, settings: Settings) -> Store | None:
        """The configured store, or None when recording is off."""
        if not settings.record:
            return None
        return cls(settings.db_path, media_max_bytes=int(settings.media_store_max_mb * 1e6))

    # ------------------------------------------------------------ connections

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # durable across a killed app
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    # ------------------------------------------------------------ answers

    def add_answer(self, record: AnswerRecord) -> Recorded:
        candidates = [self.media.read(m, self._conn()) for m in _unique(record.media)]
        with self._write() as conn:
            return self._insert_answer(conn, record, candidates)

    def _insert_answer(self, conn: sqlite3.Connection, record: AnswerRecord,
                       candidates: Sequence[Any]) -> Recorded:
        protected = {m.sha256 for m in record.media}
        problems = [p for c in candidates if (p := self.media.keep(conn, c, protected))]
        notes = record.notes + tuple(problems)
        parent = _existing(conn, record.parent_id)
        conversation = (conn.execute("SELECT conversation_id FROM answers WHERE id = ?",
                                     (parent,)).fetchone()[0] if parent else record.id)
        conn.execute(insert_sql("answers", AnswerRow),
                     params(_answer_row(record, notes, parent, conversation)))
        conn.executemany("INSERT INTO answer_media (answer_id, position, sha256) "
                         "VALUES (:answer_id, :position, :sha256)",
                         [{"answer_id": record.id, "position": i, "sha256": m.sha256}
                          for i, m in enumerate(record.media)])
        return Recorded(record.id, tuple(problems))

    def answer(self, answer_id: str) -> AnswerRecord:
        conn = self._conn()
        row = conn.execute("SELECT * FROM answers WHERE id = ?", (answer_id,)).fetchone()
        if row is None:
            raise RecordNotFound(f"No recorded answer {answer_id!r} in {self.path}.")
        media = conn.execute(
            "SELECT a.sha256, m.kind, m.name, m.path FROM answer_media a LEFT JOIN media m "
            "ON m.sha256 = a.sha256 WHERE a.answer_id = ? ORDER BY a.position", (answer_id,)
        ).fetchall()
        return _record_of(from_row(AnswerRow, row), media, self.media)

    def answers(self, answer_ids: Sequence[str]) -> list[AnswerRecord]:
        return [self.answer(answer_id) for answer_id in answer_ids]

    def media_file(self, sha256: str) -> Path | None:
        row = self._conn().execute("SELECT path FROM media WHERE sha256 = ?",
                                   (sha256,)).fetchone()
        return self.media.path_of(row[0]) if row else None

    def delete_answer(self, answer_id: str) -> None:
        """Removes an answer and its ratings; its media stay until space is needed."""
        with self._write() as conn:
            conn.execute("UPDATE answers SET parent_id = NULL WHERE parent_id = ?", (answer_id,))
            conn.execute("DELETE FROM answers WHERE id = ?", (answer_id,))

    # ------------------------------------------------------------ ratings

    def rate(self, answer_id: str, score: int | None = None, *, comment: str | None = None,
             tags: Sequence[str] | None = None) -> Rating:
        """Sets or changes the thumbs rating; arguments left None keep their current value."""
        if score not in (None, -1, 0, 1):
            raise BadInput(f"A rating is 1 (up), -1 (down) or 0 (none), not {score!r}.")
        with self._write() as conn:
            _require(conn, answer_id)
            current = _rating_row(conn, answer_id, "") or Rating(answer_id, 0)
            _upsert_rating(conn, dataclasses.replace(
                current,
                score=score if score is not None else current.score,
                comment=comment if comment is not None else current.comment,
                tags=_clean_tags(tags) if tags is not None else current.tags))
            saved = _rating_row(conn, answer_id, "")
            assert saved is not None
            return saved

    def vote(self, left_id: str, right_id: str, winner: Winner, comment: str = "") -> None:
        """A side-by-side vote: each answer gets a rating against the other."""
        scores = {"left": (1, -1), "right": (-1, 1), "tie": (0, 0)}[winner]
        with self._write() as conn:
            _require(conn, left_id)
            _require(conn, right_id)
            _upsert_rating(conn, Rating(left_id, scores[0], comment, versus_id=right_id))
            _upsert_rating(conn, Rating(right_id, scores[1], comment, versus_id=left_id))

    def ratings(self, answer_id: str) -> list[Rating]:
        rows = self._conn().execute("SELECT * FROM ratings WHERE answer_id = ? "
                                    "ORDER BY versus_id", (answer_id,)).fetchall()
        return [from_row(Rating, row) for row in rows]

    def rating(self, answer_id: str) -> Rating | None:
        return _rating_row(self._conn(), answer_id, "")

    def tags_in_use(self) -> list[str]:
        rows = self._conn().execute("SELECT DISTINCT value FROM ratings, json_each(ratings.tags) "
                                    "ORDER BY value").fetchall()
        return [row[0] for row in rows]

    # ------------------------------------------------------------ review

    def search(self, query: ReviewFilter) -> list[ReviewRow]:
        """Recorded answers matching `query`, newest first, with their thumbs rating."""
        sql, values = review_query(query)
        rows = self._conn().execute(sql, values).fetchall()
        return [from_row(ReviewRow, row) for row in rows]

    # ------------------------------------------------------------ batches

    def start_batch(self, batch_id: str, source: str, cases: int,
                    options: dict[str, Any]) -> None:
        row = BatchRow(batch_id, now(), source, cases, options)
        with self._write() as conn:
            conn.execute(insert_sql("batches", BatchRow), params(row))

    def add_batch_case(self, batch_id: str, case: BatchCaseRow,
                       record: AnswerRecord | None) -> Recorded | None:
        """One finished case (and its answer) in one transaction."""
        candidates = ([self.media.read(m, self._conn()) for m in _unique(record.media)]
                      if record else [])
        with self._write() as conn:
            recorded = self._insert_answer(conn, record, candidates) if record else None
            row = dataclasses.replace(case, batch_id=batch_id,
                                      answer_id=record.id if record else None,
                                      finished_at=now())
            conn.execute(insert_sql("batch_cases", BatchCaseRow), params(row))
            return recorded

    def finish_batch(self, batch_id: str, summary: dict[str, Any]) -> None:
        with self._write() as conn:
            conn.execute("UPDATE batches SET finished_at = :finished_at, summary = :summary "
                         "WHERE id = :id",
                         {"finished_at": now(), "summary": json.dumps(summary), "id": batch_id})

    def batch(self, batch_id: str) -> BatchRow | None:
        row = self._conn().execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return from_row(BatchRow, row) if row else None

    def batch_cases(self, batch_id: str) -> list[BatchCaseRow]:
        rows = self._conn().execute("SELECT * FROM batch_cases WHERE batch_id = ? "
                                    "ORDER BY position", (batch_id,)).fetchall()
        return [from_row(BatchCaseRow, row) for row in rows]

    def batches(self, limit: int = 200) -> list[BatchRow]:
        """The most recent batch runs, newest first."""
        rows = self._conn().execute("SELECT * FROM batches ORDER BY created_at DESC, "
                                    "rowid DESC LIMIT ?", (limit,)).fetchall()
        return [from_row(BatchRow, row) for row in rows]

    def batches_starting(self, prefix: str) -> list[BatchRow]:
        """The batch runs whose id starts with `prefix` (at most two: enough to tell)."""
        rows = self._conn().execute("SELECT * FROM batches WHERE substr(id, 1, ?) = ? "
                                    "ORDER BY created_at DESC, rowid DESC LIMIT 2",
                                    (len(prefix), prefix)).fetchall()
        return [from_row(BatchRow, row) for row in rows]

    def batch_answers(self, batch_id: str) -> list[tuple[BatchCaseRow, BatchAnswer | None]]:
        """Each case of a batch run with what its recorded answer says, in case order."""
        rows = self._conn().execute(
            "SELECT c.*, a.answer AS answer_text, a.model AS answer_model, a.revision AS "
            "answer_revision, a.adapter AS answer_adapter, a.engine_kind AS answer_engine, "
            "a.user AS answer_user FROM batch_cases c LEFT JOIN answers a "
            "ON a.id = c.answer_id WHERE c.batch_id = ? ORDER BY c.position", (batch_id,)
        ).fetchall()
        return [(from_row(BatchCaseRow, row),
                 BatchAnswer(row["answer_text"], row["answer_model"], row["answer_revision"],
                             row["answer_adapter"], row["answer_engine"], row["answer_user"])
                 if row["answer_text"] is not None else None) for row in rows]


# ---------------------------------------------------------------- SQL helpers

def _answer_row(record: AnswerRecord, notes: tuple[str, ...], parent: str | None,
                conversation: str) -> AnswerRow:
    engine, sampling, stats = record.engine, record.sampling, record.stats
    return AnswerRow(
        id=record.id, created_at=record.created_at, origin=record.origin,
        conversation_id=conversation, parent_id=parent, pair_id=record.pair_id,
        replay_of=record.replay_of, system=record.system, turns=record.turns,
        prompt=record.prompt, answer=record.answer, notes=notes, engine=engine,
        engine_kind=engine.get("kind", ""), model=engine.get("model", ""),
        revision=engine.get("revision", "") or "", adapter=record.adapter, sampling=sampling,
        temperature=sampling.get("temperature"), top_p=sampling.get("top_p"),
        max_tokens=sampling.get("max_tokens"), seed=sampling.get("seed"), stats=stats,
        ttft_s=stats.get("ttft_s"), e2e_s=stats.get("e2e_s"),
        tokens_per_s=stats.get("decode_tokens_per_s"), prompt_tokens=stats.get("prompt_tokens"),
        completion_tokens=stats.get("completion_tokens"),
        finish_reason=stats.get("finish_reason"), versions=record.versions, user=record.user,
    )


def _record_of(row: AnswerRow, media: Sequence[sqlite3.Row],
               store: MediaStore) -> AnswerRecord:
    kinds = {part["sha256"]: (part["type"], part.get("name", ""))
             for turn in row.turns for part in turn["parts"] if part["type"] != "text"}
    items = tuple(
        MediaRecord(m["sha256"], m["kind"] or kinds.get(m["sha256"], ("", ""))[0],
                    m["name"] or kinds.get(m["sha256"], ("", ""))[1],
                    str(store.path_of(m["path"])) if m["path"] else "")
        for m in media
    )
    return AnswerRecord(
        id=row.id, created_at=row.created_at, origin=row.origin, system=row.system,
        turns=row.turns, prompt=row.prompt, answer=row.answer, notes=row.notes,
        engine=row.engine, adapter=row.adapter, sampling=row.sampling, stats=row.stats,
        versions=row.versions, media=items, parent_id=row.parent_id,
        conversation_id=row.conversation_id, pair_id=row.pair_id, replay_of=row.replay_of,
        user=row.user,
    )


def _unique(media: Sequence[MediaRecord]) -> list[MediaRecord]:
    seen: dict[str, MediaRecord] = {}
    for item in media:
        seen.setdefault(item.sha256, item)
    return list(seen.values())


def _existing(conn: sqlite3.Connection, answer_id: str | None) -> str | None:
    if not answer_id:
        return None
    found = conn.execute("SELECT 1 FROM answers WHERE id = ?", (answer_id,)).fetchone()
    return answer_id if found else None


def _require(conn: sqlite3.Connection, answer_id: str) -> None:
    if _existing(conn, answer_id) is None:
        raise RecordNotFound(f"This answer was not recorded ({answer_id!r}), so it cannot be "
                             "rated. Is recording on (--record)?")


def _rating_row(conn: sqlite3.Connection, answer_id: str, versus_id: str) -> Rating | None:
    row = conn.execute("SELECT * FROM ratings WHERE answer_id = ? AND versus_id = ?",
                       (answer_id, versus_id)).fetchone()
    return from_row(Rating, row) if row else None


# The first rating's created_at stays; every change sets updated_at.
_UPSERT_RATING = (
    insert_sql("ratings", Rating) + " ON CONFLICT (answer_id, versus_id) DO UPDATE SET "
    "score = excluded.score, comment = excluded.comment, tags = excluded.tags, "
    "updated_at = excluded.updated_at"
)


def _upsert_rating(conn: sqlite3.Connection, rating: Rating) -> None:
    stamp = now()
    conn.execute(_UPSERT_RATING,
                 params(dataclasses.replace(rating, created_at=stamp, updated_at=stamp)))


def _clean_tags(tags: Sequence[str]) -> tuple[str, ...]:
    cleaned = (tag.strip().lower() for tag in tags)
    return tuple(dict.fromkeys(tag for tag in cleaned if tag))
