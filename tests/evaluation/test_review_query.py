"""The review's SQL is built from the filter with named parameters only: what a person
types never becomes SQL."""

from __future__ import annotations

import pytest

from phi4ui.errors import BadInput
from phi4ui.evaluation.review_query import ReviewFilter, review_query


def test_no_filter_matches_everything_newest_first_up_to_the_limit():
    sql, values = review_query(ReviewFilter(limit=20))
    assert "WHERE 1 ORDER BY a.created_at DESC LIMIT :limit" in sql
    assert values == {"limit": 20}


def test_each_filter_adds_its_condition_and_named_value():
    query = ReviewFilter(rating="up", tag=" Good ", since="2026-01-31", until="2026-02-28",
                         origin="batch", text="50% off")
    sql, values = review_query(query)
    assert values == {"tag": "good", "since": "2026-01-31", "until": "2026-03-01",
                      "origin": "batch", "text": "%50% off%", "limit": 500}
    for condition in ("r.score = 1", "value = :tag", "a.created_at >= :since",
                      "a.created_at < :until", "a.origin = :origin",
                      "(a.prompt LIKE :text OR a.answer LIKE :text)"):
        assert condition in sql


def test_typed_text_never_becomes_sql():
    sql, values = review_query(ReviewFilter(tag="x'); DROP TABLE answers; --",
                                            origin="o' OR '1'='1", text="'; --"))
    assert "DROP" not in sql and "'1'='1" not in sql and "; --" not in sql
    assert values["origin"] == "o' OR '1'='1"


@pytest.mark.parametrize(("rating", "condition"), [
    ("down", "r.score = -1"), ("unrated", "(r.score IS NULL OR r.score = 0)"),
    ("voted", "v.versus_id != ''")])
def test_rating_filters(rating, condition):
    sql, _ = review_query(ReviewFilter(rating=rating))
    assert condition in sql


def test_blank_filters_add_nothing():
    sql, values = review_query(ReviewFilter(tag="  ", since=" ", origin="", text=" "))
    assert "WHERE 1 " in sql and values == {"limit": 500}


def test_a_date_that_is_not_one_is_refused_naming_the_field():
    with pytest.raises(BadInput, match="To: 'yesterday' is not a date; write it as YYYY-MM-DD"):
        review_query(ReviewFilter(until="yesterday"))
