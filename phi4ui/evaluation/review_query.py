"""What the review tab asks the store: recorded answers by rating, tag, date, origin and
text, as one SQL query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from phi4ui.errors import BadInput

RatingFilter = Literal["any", "up", "down", "unrated", "voted"]


@dataclass(frozen=True)
class ReviewFilter:
    rating: RatingFilter = "any"
    tag: str = ""
    since: str = ""  # YYYY-MM-DD, inclusive
    until: str = ""  # YYYY-MM-DD, inclusive
    origin: str = ""
    text: str = ""
    limit: int = 500


_REVIEW_SELECT = (
    "SELECT a.id, a.created_at, a.origin, a.model, a.adapter, a.prompt, a.answer, a.ttft_s, "
    "a.tokens_per_s, a.completion_tokens, a.user, r.score AS rating, r.tags AS tags, "
    "r.comment AS comment FROM answers a "
    "LEFT JOIN ratings r ON r.answer_id = a.id AND r.versus_id = ''"
)


def review_query(query: ReviewFilter) -> tuple[str, list[Any]]:
    """The SQL and its parameters: matching answers with their thumbs rating, newest first."""
    where, params = _where(query)
    sql = (f"{_REVIEW_SELECT} WHERE {' AND '.join(where) or '1'} "
           "ORDER BY a.created_at DESC LIMIT ?")
    return sql, [*params, query.limit]


def _where(query: ReviewFilter) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    rating = {"up": "r.score = 1", "down": "r.score = -1",
              "unrated": "(r.score IS NULL OR r.score = 0)",
              "voted": "EXISTS (SELECT 1 FROM ratings v WHERE v.answer_id = a.id "
                       "AND v.versus_id != '')"}.get(query.rating)
    if rating:
        where.append(rating)
    if query.tag.strip():
        where.append("EXISTS (SELECT 1 FROM json_each(r.tags) WHERE value = ?)")
        params.append(query.tag.strip().lower())
    if query.since.strip():
        where.append("a.created_at >= ?")
        params.append(_day(query.since, "From").isoformat())
    if query.until.strip():
        where.append("a.created_at < ?")
        params.append((_day(query.until, "To") + timedelta(days=1)).isoformat())
    if query.origin.strip():
        where.append("a.origin = ?")
        params.append(query.origin.strip())
    if query.text.strip():
        where.append("(a.prompt LIKE ? OR a.answer LIKE ?)")
        params += [f"%{query.text.strip()}%"] * 2
    return where, params


def _day(text: str, label: str) -> date:
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise BadInput(f"{label}: {text!r} is not a date; write it as YYYY-MM-DD.") from None
