"""What the review tab asks the store: recorded answers by rating, tag, date, origin and
text, as one SQL query with named parameters, and the rows it gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from phi4ui.errors import BadInput
from phi4ui.evaluation.rows import JSON_LIST

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


@dataclass(frozen=True)
class ReviewRow:
    """One answer found by the review, with its thumbs rating (None, no tags and no comment
    when it has none)."""

    id: str
    created_at: str
    origin: str
    model: str
    adapter: str | None
    prompt: str
    answer: str
    ttft_s: float | None
    tokens_per_s: float | None
    completion_tokens: int | None
    user: str
    rating: int | None
    tags: tuple[str, ...] = field(metadata=JSON_LIST)
    comment: str


_REVIEW_SELECT = (
    "SELECT a.id, a.created_at, a.origin, a.model, a.adapter, a.prompt, a.answer, a.ttft_s, "
    "a.tokens_per_s, a.completion_tokens, a.user, r.score AS rating, "
    "COALESCE(r.tags, '[]') AS tags, COALESCE(r.comment, '') AS comment FROM answers a "
    "LEFT JOIN ratings r ON r.answer_id = a.id AND r.versus_id = ''"
)
_RATINGS = {"up": "r.score = 1", "down": "r.score = -1",
            "unrated": "(r.score IS NULL OR r.score = 0)",
            "voted": "EXISTS (SELECT 1 FROM ratings v WHERE v.answer_id = a.id "
                     "AND v.versus_id != '')"}


def review_query(query: ReviewFilter) -> tuple[str, dict[str, Any]]:
    """The SQL and its named parameters: matching answers with their thumbs rating (the
    columns of `ReviewRow`), newest first."""
    where, values = _where(query)
    sql = (f"{_REVIEW_SELECT} WHERE {' AND '.join(where) or '1'} "
           "ORDER BY a.created_at DESC LIMIT :limit")
    return sql, {**values, "limit": query.limit}


def _where(query: ReviewFilter) -> tuple[list[str], dict[str, Any]]:
    where: list[str] = []
    values: dict[str, Any] = {}
    if rating := _RATINGS.get(query.rating):
        where.append(rating)
    if query.tag.strip():
        where.append("EXISTS (SELECT 1 FROM json_each(r.tags) WHERE value = :tag)")
        values["tag"] = query.tag.strip().lower()
    if query.since.strip():
        where.append("a.created_at >= :since")
        values["since"] = _day(query.since, "From").isoformat()
    if query.until.strip():
        where.append("a.created_at < :until")
        values["until"] = (_day(query.until, "To") + timedelta(days=1)).isoformat()
    if query.origin.strip():
        where.append("a.origin = :origin")
        values["origin"] = query.origin.strip()
    if query.text.strip():
        where.append("(a.prompt LIKE :text OR a.answer LIKE :text)")
        values["text"] = f"%{query.text.strip()}%"
    return where, values


def _day(text: str, label: str) -> date:
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise BadInput(f"{label}: {text!r} is not a date; write it as YYYY-MM-DD.") from None
