"""Text and tables of the evaluation tabs: pure functions of records, results and pairs.
Markdown from recorded text is escaped here and nowhere else: every value that comes
from the store, a bundle, a case file or a person is shown as text (`escape`, or
`code_span` for names and ids), and answers go through `safe_markdown`. Dataframe cells
are shown as plain text (datatype "str"), so they are not escaped."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from phi4ui.core import figures
from phi4ui.evaluation.batch import CaseResult, Progress, Summary
from phi4ui.evaluation.compare import Side
from phi4ui.evaluation.review_query import ReviewRow
from phi4ui.evaluation.store import AnswerRecord, Rating
from phi4ui.page.safe_markdown import code_span, escape_markdown, safe_markdown

REVIEW_COLUMNS = ["id", "time (UTC)", "origin", "model", "adapter", "rating", "tags",
                  "question", "answer", "first token (s)", "tok/s", "asked by"]
BATCH_COLUMNS = ["case", "id", "prompt", "answer", "error", "expected found",
                 "first token (s)", "tok/s", "tokens", "adapter"]
RATING_LABELS = {1: "👍", -1: "👎", 0: "·"}
RATING_WORDS = {1: "up", -1: "down", 0: "no thumbs"}
SHORT_ID = 12
_USER_TURN = re.compile(r"<\|user\|>(.*?)<\|end\|>", re.S)
_PLACEHOLDER = re.compile(r"<\|(image|audio)_\d+\|>")


def escape(text: str) -> str:
    """`text` shown as it is in Markdown (no markup, HTML, LaTeX or diagram in it works)."""
    return escape_markdown(text)


def shorten(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def last_question(prompt: str) -> str:
    """The newest user text of a rendered prompt, media placeholders as [image]/[audio]."""
    turns = _USER_TURN.findall(prompt)
    return _PLACEHOLDER.sub(lambda m: f"[{m.group(1)}] ", turns[-1]).strip() if turns else ""


# ---------------------------------------------------------------- review

def review_rows(found: Sequence[ReviewRow]) -> list[list[Any]]:
    return [[row.id[:SHORT_ID], row.created_at[:19].replace("T", " "), row.origin, row.model,
             row.adapter or "none", RATING_LABELS.get(row.rating, "") if row.rating is not None
             else "", ", ".join(row.tags), shorten(last_question(row.prompt)),
             shorten(row.answer), _round(row.ttft_s, 3), _round(row.tokens_per_s, 1),
             row.user or "—"]
            for row in found]


def record_details(record: AnswerRecord, ratings: Sequence[Rating]) -> str:
    """A recorded answer in full: conversation, answer, settings, statistics, ratings."""
    parts = [f"### Answer {code_span(record.id)}",
             f"{escape(record.created_at)} · {escape(record.origin)}"
             + (f" · asked by {escape(record.user)}" if record.user else "")]
    if record.system:
        parts.append(f"**System:** {escape(record.system)}")
    for turn in record.turns:
        parts.append(f"**{escape(str(turn['role']))}:** "
                     + " ".join(_part(p) for p in turn["parts"]))
    parts.append(f"**Answer:**\n\n{safe_markdown(record.answer) or '_(empty)_'}")
    parts.append(_settings_table(record))
    if record.notes:
        parts.append("**Notes:** " + "; ".join(escape(n) for n in record.notes))
    parts.append("**Ratings:** " + (", ".join(_rating(r) for r in ratings) or "none yet"))
    versions = ", ".join(f"{k} {v}" for k, v in record.versions.items())
    parts.append(f"<sub>{escape(versions)}</sub>")
    return "\n\n".join(parts)


def _part(part: Mapping[str, Any]) -> str:
    if part["type"] == "text":
        return escape(part["text"])
    icon = "🖼️" if part["type"] == "image" else "🔊"
    return f"{icon} {code_span(str(part.get('name', '')))} ({code_span(str(part['sha256'])[:12])})"


def _settings_table(record: AnswerRecord) -> str:
    stats, sampling, engine = record.stats, record.sampling, record.engine
    rows = [
        ("Engine", f"{engine.get('kind', '')} · {engine.get('model', '')} "
                   f"@ {engine.get('revision', '') or 'n/a'}"),
        ("Adapter", record.adapter or "none (base model)"),
        ("Sampling", ", ".join(f"{k} {v}" for k, v in sampling.items())),
        ("First token / end to end", f"{figures.exact_seconds(stats.get('ttft_s'))} / "
                                     f"{figures.exact_seconds(stats.get('e2e_s'))}"),
        ("Decode speed", figures.rate(stats.get("decode_tokens_per_s"))),
        ("Tokens (prompt / answer)", f"{stats.get('prompt_tokens')} / "
                                     f"{stats.get('completion_tokens')} "
                                     f"({stats.get('finish_reason')})"),
    ]
    return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {escape(' '.join(str(v).split()))} |"
                                           for k, v in rows)


def _rating(rating: Rating) -> str:
    label = RATING_LABELS.get(rating.score, "")
    if rating.versus_id:
        label = {1: "better than", -1: "worse than", 0: "tie with"}[rating.score]
        label += f" {code_span(rating.versus_id[:8])}"
    extra = [", ".join(escape(tag) for tag in rating.tags)] if rating.tags else []
    extra += [f"“{escape(rating.comment)}”"] if rating.comment else []
    return label + (f" ({'; '.join(extra)})" if extra else "")


# ---------------------------------------------------------------- batch

def batch_rows(results: Sequence[CaseResult]) -> list[list[Any]]:
    rows = []
    for result in sorted(results, key=lambda r: r.case.position):
        row = result.row()
        found = row["expected_found"]
        rows.append([row["case"], row["id"], shorten(row["prompt"]), row["answer"],
                     row["error"], "" if found is None else ("yes" if found else "no"),
                     _round(row["ttft_s"], 3), _round(row["tokens_per_s"], 1),
                     row["completion_tokens"] or "", row["adapter"] or ""])
    return rows


def batch_progress(progress: Progress, errors: int) -> str:
    return f"**Running:** {progress.done} of {progress.total} cases done, {errors} with errors."


def batch_summary(summary: Summary, notes: Sequence[str] = ()) -> str:
    lines = [f"- {escape(line)}" for line in summary.lines()]
    lines += [f"- note: {escape(note)}" for note in notes]
    return "**Done.**\n\n" + "\n".join(lines)


# ---------------------------------------------------------------- side by side

def side_answer(side: Side) -> str:
    if side.error:
        return f"⚠️ {escape(side.error)}"
    # The cursor goes in before the text is made safe: a fence left open while the
    # answer streams is closed after it.
    return safe_markdown(side.text + ("" if side.done else " ▌"))


def side_stats(side: Side) -> str:
    if side.stats is None:
        return "" if side.error else "_streaming…_"
    recorded = "" if side.answer_id else " · not recorded"
    return escape(side.stats.summary()) + recorded


def _round(value: Any, digits: int) -> Any:
    return "" if value is None else round(float(value), digits)
