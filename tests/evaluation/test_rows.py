"""The store's row dataclasses against the real schema: every column has a field and
every field a column, so a renamed field cannot silently store NULL; and rows written
from the fields read back equal."""

from __future__ import annotations

import sqlite3

import pytest

from phi4ui.evaluation.migrations import migrate
from phi4ui.evaluation.review_query import ReviewFilter, ReviewRow, review_query
from phi4ui.evaluation.rows import (
    TABLE_ROWS,
    AnswerRow,
    BatchCaseRow,
    BatchRow,
    Rating,
    column_names,
    from_row,
    insert_sql,
    params,
)


@pytest.fixture()
def conn():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    migrate(conn)
    yield conn
    conn.close()


def table_columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}


@pytest.mark.parametrize("table", sorted(TABLE_ROWS))
def test_each_table_has_exactly_the_fields_of_its_row(conn, table):
    fields = set(column_names(TABLE_ROWS[table]))
    columns = table_columns(conn, table)
    assert fields - columns == set(), f"fields of {TABLE_ROWS[table].__name__} with no column"
    assert columns - fields == set(), f"columns of {table} with no field"


def test_every_table_that_holds_records_has_a_row():
    tables_without_rows = {"migrations", "answer_media"}  # written and read as plain values
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master "
                                             "WHERE type = 'table'")}
    assert tables - tables_without_rows == set(TABLE_ROWS)


def test_the_review_query_gives_the_columns_of_a_review_row(conn):
    sql, values = review_query(ReviewFilter())
    cursor = conn.execute(sql, values)
    assert [column[0] for column in cursor.description] == list(column_names(ReviewRow))


def answer_row(**changes) -> AnswerRow:
    values = {name: None for name in column_names(AnswerRow)}
    values.update(id="a1", created_at="2026-01-02T03:04:05.000+00:00", origin="chat",
                  conversation_id="a1", system="", turns=[{"role": "user", "parts": []}],
                  prompt="<|user|>hi<|end|><|assistant|>", answer="hello", notes=("kept",),
                  engine={"kind": "embedded"}, engine_kind="embedded", model="tiny",
                  revision="", sampling={"temperature": 0.0}, temperature=0.0, stats={},
                  versions={"phi4ui": "0.1.0"}, user="ada")
    values.update(changes)
    return AnswerRow(**values)


def test_an_answer_row_reads_back_equal_with_json_and_nulls(conn):
    row = answer_row(ttft_s=0.25, completion_tokens=7)
    conn.execute(insert_sql("answers", AnswerRow), params(row))
    stored = conn.execute("SELECT * FROM answers").fetchone()
    assert stored["notes"] == '["kept"]' and stored["parent_id"] is None
    assert from_row(AnswerRow, stored) == row


def test_ratings_and_batch_rows_read_back_equal(conn):
    conn.execute(insert_sql("answers", AnswerRow), params(answer_row()))
    rating = Rating("a1", -1, "meh", ("wrong", "slow"), "", "t0", "t1")
    batch = BatchRow("b1", "t0", "cases.jsonl", 2, {"concurrency": 4})
    case = BatchCaseRow(1, "c1", "Why?", None, ("x",), None, "b1", "a1", "t2")
    for table, row in (("ratings", rating), ("batches", batch), ("batch_cases", case)):
        conn.execute(insert_sql(table, type(row)), params(row))
    assert from_row(Rating, conn.execute("SELECT * FROM ratings").fetchone()) == rating
    stored_batch = from_row(BatchRow, conn.execute("SELECT * FROM batches").fetchone())
    assert stored_batch == batch and stored_batch.summary is None
    assert from_row(BatchCaseRow, conn.execute("SELECT * FROM batch_cases").fetchone()) == case


def test_params_name_every_field_and_keep_json_as_text():
    rating = Rating("a1", 1, tags=("good",))
    assert params(rating) == {"answer_id": "a1", "score": 1, "comment": "", "tags": '["good"]',
                              "versus_id": "", "created_at": "", "updated_at": ""}
    assert insert_sql("ratings", Rating) == (
        "INSERT INTO ratings (answer_id, score, comment, tags, versus_id, created_at, "
        "updated_at) VALUES (:answer_id, :score, :comment, :tags, :versus_id, :created_at, "
        ":updated_at)")


def test_a_row_without_a_fields_column_is_refused(conn):
    row = conn.execute("SELECT answer_id, score FROM ratings UNION ALL SELECT 'a', 1").fetchone()
    with pytest.raises(IndexError):
        from_row(Rating, row)
