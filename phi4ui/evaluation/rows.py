"""The store's tables as frozen dataclasses, one field per column.

Statements are written from the fields (`insert_sql`, `params`) and rows are read back
by column name (`from_row`), here and nowhere else, so a field and its column cannot
drift apart unnoticed: a field without a column fails the statement, and a test checks
that every column has a field. A field with `JSON` or `JSON_LIST` metadata is stored
as JSON text; NULL stays None.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

Row = TypeVar("Row")
_DECODE = "decode"
# Field metadata of a column kept as JSON text: how the parsed JSON becomes the value.
JSON: dict[str, Callable[[Any], Any]] = {_DECODE: lambda value: value}
JSON_LIST: dict[str, Callable[[Any], Any]] = {_DECODE: tuple}  # a JSON list, as a tuple


def column_names(row_type: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(row_type))


def insert_sql(table: str, row_type: type[Any]) -> str:
    """`INSERT INTO table (a, b, …) VALUES (:a, :b, …)` for the fields of `row_type`."""
    names = column_names(row_type)
    return (f"INSERT INTO {table} ({', '.join(names)}) "
            f"VALUES ({', '.join(':' + name for name in names)})")


def params(row: Any) -> dict[str, Any]:
    """The named parameters of a row: each field by name, JSON columns as JSON text."""
    return {f.name: _encode(f, getattr(row, f.name)) for f in dataclasses.fields(row)}


def from_row(row_type: type[Row], row: sqlite3.Row) -> Row:
    """A row dataclass from a database row, by column name; raises IndexError when the row
    lacks a field's column."""
    fields = dataclasses.fields(row_type)  # type: ignore[arg-type]
    return row_type(**{f.name: _decode(f, row[f.name]) for f in fields})


def _encode(column: dataclasses.Field[Any], value: Any) -> Any:
    if _DECODE not in column.metadata or value is None:
        return value
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def _decode(column: dataclasses.Field[Any], value: Any) -> Any:
    if _DECODE not in column.metadata or value is None:
        return value
    return column.metadata[_DECODE](json.loads(value))


# ---------------------------------------------------------------- the tables

@dataclass(frozen=True)
class AnswerRow:
    """One recorded answer as stored. engine_kind … revision, temperature … seed and
    ttft_s … finish_reason repeat values of the JSON columns engine, sampling and stats,
    so that the review can filter and sort on them."""

    id: str
    created_at: str
    origin: str
    conversation_id: str
    parent_id: str | None
    pair_id: str | None
    replay_of: str | None
    system: str
    turns: list[dict[str, Any]] = field(metadata=JSON)
    prompt: str
    answer: str
    notes: tuple[str, ...] = field(metadata=JSON_LIST)
    engine: dict[str, Any] = field(metadata=JSON)
    engine_kind: str
    model: str
    revision: str
    adapter: str | None
    sampling: dict[str, Any] = field(metadata=JSON)
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    seed: int | None
    stats: dict[str, Any] = field(metadata=JSON)
    ttft_s: float | None
    e2e_s: float | None
    tokens_per_s: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    versions: dict[str, str] = field(metadata=JSON)
    user: str


@dataclass(frozen=True)
class Rating:
    answer_id: str
    score: int  # 1 up (or the better of a pair), -1 down, 0 neither / a tie
    comment: str = ""
    tags: tuple[str, ...] = field(default=(), metadata=JSON_LIST)
    versus_id: str = ""  # the other answer, for a side-by-side vote
    created_at: str = ""
    updated_at: str = ""


@dataclass(frozen=True)
class MediaRow:
    sha256: str
    kind: str  # "image" or "audio"
    name: str
    path: str  # relative to the media folder
    size: int
    created_at: str


@dataclass(frozen=True)
class BatchRow:
    id: str
    created_at: str
    source: str
    cases: int
    options: dict[str, Any] = field(default_factory=dict, metadata=JSON)
    finished_at: str | None = None
    summary: dict[str, Any] | None = field(default=None, metadata=JSON)


@dataclass(frozen=True)
class BatchCaseRow:
    """One finished case of a batch; the store sets batch_id, answer_id and finished_at."""

    position: int
    case_id: str
    prompt: str
    expected: str | None = None
    tags: tuple[str, ...] = field(default=(), metadata=JSON_LIST)
    error: str | None = None
    batch_id: str = ""
    answer_id: str | None = None
    finished_at: str = ""
    also_expected: tuple[str, ...] = field(default=(), metadata=JSON_LIST)
    task: str = ""  # as `metrics.resolve_task` chose it when the case ran
    pattern: str | None = None

    @property
    def expected_answers(self) -> tuple[str, ...]:
        return ((self.expected,) if self.expected else ()) + self.also_expected


TABLE_ROWS: dict[str, type[Any]] = {
    "answers": AnswerRow, "ratings": Rating, "media": MediaRow, "batches": BatchRow,
    "batch_cases": BatchCaseRow,
}
