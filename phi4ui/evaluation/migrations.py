"""The answer record's schema, grown by numbered migrations that never change once shipped.

`migrate(conn)` applies, in order, every migration whose number is not in the
`migrations` table yet, each in its own transaction together with its row in
that table. To change the schema, append a migration with the next number;
never edit one that has been released.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    apply: Callable[[sqlite3.Connection], None]


MIGRATIONS: list[Migration] = []


def migration(number: int) -> Callable[[Callable[[sqlite3.Connection], None]],
                                       Callable[[sqlite3.Connection], None]]:
    def register(apply: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection],
                                                                           None]:
        if MIGRATIONS and number <= MIGRATIONS[-1].number:
            raise ValueError(f"migration {number} must come after {MIGRATIONS[-1].number}")
        MIGRATIONS.append(Migration(number, apply.__name__, apply))
        return apply

    return register


def _run(conn: sqlite3.Connection, sql: str) -> None:
    # Statement by statement: executescript() would commit the migration's transaction.
    # The schema's SQL holds no ';' inside literals, so splitting on it is safe.
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement)


@migration(1)
def m001_answers_and_media(conn: sqlite3.Connection) -> None:
    _run(conn, """
    CREATE TABLE answers (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        origin TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        parent_id TEXT,
        system TEXT NOT NULL,
        turns TEXT NOT NULL,
        prompt TEXT NOT NULL,
        answer TEXT NOT NULL,
        notes TEXT NOT NULL DEFAULT '[]',
        engine TEXT NOT NULL,
        engine_kind TEXT NOT NULL,
        model TEXT NOT NULL,
        revision TEXT NOT NULL DEFAULT '',
        adapter TEXT,
        sampling TEXT NOT NULL,
        temperature REAL,
        top_p REAL,
        max_tokens INTEGER,
        seed INTEGER,
        stats TEXT NOT NULL,
        ttft_s REAL,
        e2e_s REAL,
        tokens_per_s REAL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        finish_reason TEXT,
        versions TEXT NOT NULL
    );
    CREATE INDEX answers_by_time ON answers (created_at);
    CREATE INDEX answers_by_conversation ON answers (conversation_id, created_at);
    CREATE TABLE media (
        sha256 TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE answer_media (
        answer_id TEXT NOT NULL REFERENCES answers (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (answer_id, position)
    );
    CREATE INDEX answer_media_by_hash ON answer_media (sha256);
    """)


@migration(2)
def m002_ratings_and_pairs(conn: sqlite3.Connection) -> None:
    # versus_id is '' for a thumbs rating and the other answer's id for a
    # side-by-side vote, so that both kinds share one upsert key.
    _run(conn, """
    CREATE TABLE ratings (
        answer_id TEXT NOT NULL REFERENCES answers (id) ON DELETE CASCADE,
        versus_id TEXT NOT NULL DEFAULT '',
        score INTEGER NOT NULL CHECK (score IN (-1, 0, 1)),
        comment TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (answer_id, versus_id)
    );
    ALTER TABLE answers ADD COLUMN pair_id TEXT;
    ALTER TABLE answers ADD COLUMN replay_of TEXT;
    """)


@migration(3)
def m003_batches(conn: sqlite3.Connection) -> None:
    _run(conn, """
    CREATE TABLE batches (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        source TEXT NOT NULL,
        cases INTEGER NOT NULL,
        options TEXT NOT NULL,
        finished_at TEXT,
        summary TEXT
    );
    CREATE TABLE batch_cases (
        batch_id TEXT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        case_id TEXT NOT NULL,
        prompt TEXT NOT NULL,
        expected TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        answer_id TEXT REFERENCES answers (id) ON DELETE SET NULL,
        error TEXT,
        finished_at TEXT NOT NULL,
        PRIMARY KEY (batch_id, position)
    );
    """)


@migration(4)
def m004_login_names(conn: sqlite3.Connection) -> None:
    # The login name of whoever asked ('' without --auth), so that what a person may see
    # and export can be decided on the server.
    _run(conn, """
    ALTER TABLE answers ADD COLUMN user TEXT NOT NULL DEFAULT '';
    CREATE INDEX answers_by_user ON answers (user, created_at)
    """)


@migration(5)
def m005_batch_case_metrics(conn: sqlite3.Connection) -> None:
    # What a case's metrics need besides its answer, so that a recorded run can be scored
    # again and compared with another: every accepted answer, the task, the pattern.
    _run(conn, """
    ALTER TABLE batch_cases ADD COLUMN also_expected TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE batch_cases ADD COLUMN task TEXT NOT NULL DEFAULT '';
    ALTER TABLE batch_cases ADD COLUMN pattern TEXT
    """)


def migrate(conn: sqlite3.Connection, *, upto: int | None = None) -> list[int]:
    """Applies pending migrations (up to number `upto`); returns the numbers applied.

    `conn` must be in autocommit mode (isolation_level=None). Each migration takes
    the write lock first, so two processes opening one file at once apply it once.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS migrations (number INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    applied: list[int] = []
    for step in MIGRATIONS:
        if upto is not None and step.number > upto:
            break
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute("SELECT 1 FROM migrations WHERE number = ?",
                                (step.number,)).fetchone()
            if not done:
                step.apply(conn)
                conn.execute("INSERT INTO migrations (number, name, applied_at) "
                             "VALUES (:number, :name, :applied_at)",
                             {"number": step.number, "name": step.name,
                              "applied_at": datetime.now(UTC).isoformat()})
                applied.append(step.number)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return applied
