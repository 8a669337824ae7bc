"""The record of every answer, and the ratings on them: one SQLite file (WAL mode).

Opening a `Store` brings the file's schema up to date (`phi4ui.evaluation.migrations`).
Each thread gets its own connection; every write is one `BEGIN IMMEDIATE`
transaction, so an answer, its media and its batch case land together or not
at all, and whatever was committed survives the app being killed. Calls block
for milliseconds; from the event loop, run them with `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
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
from phi4ui.evaluation.review_query import ReviewFilter, review_query
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
class Recorded:
    answer_id: str
    notes: tuple[str, ...] = ()  # media that could not be kept


@dataclass(frozen=True)
class Rating:
    answer_id: str
    score: int  # 1 up (or the better of a pair), -1 down, 0 neither / a tie
    comment: str = ""
    tags: tuple[str, ...] = ()
    versus_id: str = ""  # the other answer, for a side-by-side vote
    created_at: str = ""
    updated_at: str = ""


@dataclass(frozen=True)
class BatchCaseRow:
    position: int
    case_id: str
    prompt: str
    expected: str | None = None
    tags: tuple[str, ...] = ()
    error: str | None = None


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
        conn.execute(_INSERT_ANSWER, _answer_values(record, notes, parent, conversation))
        conn.executemany("INSERT INTO answer_media (answer_id, position, sha256) "
                         "VALUES (?, ?, ?)",
                         [(record.id, i, m.sha256) for i, m in enumerate(record.media)])
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
        return _record_of(row, media, self.media)

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
            current = _rating_row(conn, answer_id, "")
            _upsert_rating(conn, Rating(
                answer_id,
                score if score is not None else (current["score"] if current else 0),
                comment if comment is not None else (current["comment"] if current else ""),
                _clean_tags(tags) if tags is not None
                else (tuple(json.loads(current["tags"])) if current else ())))
            saved = _rating_row(conn, answer_id, "")
            assert saved is not None
            return _rating_of(saved)

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
        return [_rating_of(row) for row in rows]

    def rating(self, answer_id: str) -> Rating | None:
        row = _rating_row(self._conn(), answer_id, "")
        return _rating_of(row) if row else None

    def tags_in_use(self) -> list[str]:
        rows = self._conn().execute("SELECT DISTINCT value FROM ratings, json_each(ratings.tags) "
                                    "ORDER BY value").fetchall()
        return [row[0] for row in rows]

    # ------------------------------------------------------------ review

    def search(self, query: ReviewFilter) -> list[dict[str, Any]]:
        """Recorded answers matching `query`, newest first, with their thumbs rating."""
        sql, params = review_query(query)
        rows = self._conn().execute(sql, params).fetchall()
        return [dict(row) for row in rows]

    # ------------------------------------------------------------ batches

    def start_batch(self, batch_id: str, source: str, cases: int,
                    options: dict[str, Any]) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO batches (id, created_at, source, cases, options) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (batch_id, now(), source, cases, json.dumps(options)))

    def add_batch_case(self, batch_id: str, case: BatchCaseRow,
                       record: AnswerRecord | None) -> Recorded | None:
        """One finished case (and its answer) in one transaction."""
        candidates = ([self.media.read(m, self._conn()) for m in _unique(record.media)]
                      if record else [])
        with self._write() as conn:
            recorded = self._insert_answer(conn, record, candidates) if record else None
            conn.execute(
                "INSERT INTO batch_cases (batch_id, position, case_id, prompt, expected, tags, "
                "answer_id, error, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (batch_id, case.position, case.case_id, case.prompt, case.expected,
                 json.dumps(list(case.tags)), record.id if record else None, case.error, now()))
            return recorded

    def finish_batch(self, batch_id: str, summary: dict[str, Any]) -> None:
        with self._write() as conn:
            conn.execute("UPDATE batches SET finished_at = ?, summary = ? WHERE id = ?",
                         (now(), json.dumps(summary), batch_id))

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return dict(row) if row else None

    def batch_cases(self, batch_id: str) -> list[dict[str, Any]]:
        rows = self._conn().execute("SELECT * FROM batch_cases WHERE batch_id = ? "
                                    "ORDER BY position", (batch_id,)).fetchall()
        return [dict(row) for row in rows]


# ---------------------------------------------------------------- SQL helpers

_ANSWER_COLUMNS = (
    "id", "created_at", "origin", "conversation_id", "parent_id", "pair_id", "replay_of",
    "system", "turns", "prompt", "answer", "notes", "engine", "engine_kind", "model",
    "revision", "adapter", "sampling", "temperature", "top_p", "max_tokens", "seed", "stats",
    "ttft_s", "e2e_s", "tokens_per_s", "prompt_tokens", "completion_tokens", "finish_reason",
    "versions", "user",
)
_INSERT_ANSWER = (f"INSERT INTO answers ({', '.join(_ANSWER_COLUMNS)}) "
                  f"VALUES ({', '.join('?' * len(_ANSWER_COLUMNS))})")
def _answer_values(record: AnswerRecord, notes: tuple[str, ...], parent: str | None,
                   conversation: str) -> tuple[Any, ...]:
    stats, sampling = record.stats, record.sampling
    return (
        record.id, record.created_at, record.origin, conversation, parent, record.pair_id,
        record.replay_of, record.system, json.dumps(record.turns), record.prompt, record.answer,
        json.dumps(list(notes)), json.dumps(record.engine), record.engine.get("kind", ""),
        record.engine.get("model", ""), record.engine.get("revision", "") or "",
        record.adapter, json.dumps(sampling), sampling.get("temperature"),
        sampling.get("top_p"), sampling.get("max_tokens"), sampling.get("seed"),
        json.dumps(stats), stats.get("ttft_s"), stats.get("e2e_s"),
        stats.get("decode_tokens_per_s"), stats.get("prompt_tokens"),
        stats.get("completion_tokens"), stats.get("finish_reason"),
        json.dumps(record.versions), record.user,
    )


def _record_of(row: sqlite3.Row, media: Sequence[sqlite3.Row],
               store: MediaStore) -> AnswerRecord:
    kinds = {part["sha256"]: (part["type"], part.get("name", ""))
             for turn in json.loads(row["turns"]) for part in turn["parts"]
             if part["type"] != "text"}
    items = tuple(
        MediaRecord(m["sha256"], m["kind"] or kinds.get(m["sha256"], ("", ""))[0],
                    m["name"] or kinds.get(m["sha256"], ("", ""))[1],
                    str(store.path_of(m["path"])) if m["path"] else "")
        for m in media
    )
    return AnswerRecord(
        id=row["id"], created_at=row["created_at"], origin=row["origin"], system=row["system"],
        turns=json.loads(row["turns"]), prompt=row["prompt"], answer=row["answer"],
        notes=tuple(json.loads(row["notes"])), engine=json.loads(row["engine"]),
        adapter=row["adapter"], sampling=json.loads(row["sampling"]),
        stats=json.loads(row["stats"]), versions=json.loads(row["versions"]), media=items,
        parent_id=row["parent_id"], conversation_id=row["conversation_id"],
        pair_id=row["pair_id"], replay_of=row["replay_of"], user=row["user"],
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


def _rating_row(conn: sqlite3.Connection, answer_id: str, versus_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM ratings WHERE answer_id = ? AND versus_id = ?",
        (answer_id, versus_id)).fetchone()
    return row


def _upsert_rating(conn: sqlite3.Connection, rating: Rating) -> None:
    stamp = now()
    conn.execute(
        "INSERT INTO ratings (answer_id, versus_id, score, comment, tags, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (answer_id, versus_id) DO UPDATE "
        "SET score = excluded.score, comment = excluded.comment, tags = excluded.tags, "
        "updated_at = excluded.updated_at",
        (rating.answer_id, rating.versus_id, rating.score, rating.comment,
         json.dumps(list(rating.tags)), stamp, stamp))


def _rating_of(row: sqlite3.Row) -> Rating:
    return Rating(answer_id=row["answer_id"], score=row["score"], comment=row["comment"],
                  tags=tuple(json.loads(row["tags"])), versus_id=row["versus_id"],
                  created_at=row["created_at"], updated_at=row["updated_at"])


def _clean_tags(tags: Sequence[str]) -> tuple[str, ...]:
    cleaned = (tag.strip().lower() for tag in tags)
    return tuple(dict.fromkeys(tag for tag in cleaned if tag))
