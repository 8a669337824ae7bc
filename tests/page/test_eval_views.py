"""The evaluation views' text and table rows, from rows and results made by hand."""

from __future__ import annotations

from phi4ui.evaluation.batch import CaseResult, summarize
from phi4ui.evaluation.cases import Case
from phi4ui.evaluation.review_query import ReviewRow
from phi4ui.page import eval_views


def review_row(**changes) -> ReviewRow:
    values = dict(id="0123456789abcdef", created_at="2026-03-04T05:06:07.890+00:00",
                  origin="chat", model="tiny", adapter=None,
                  prompt="<|system|>Be brief.<|end|><|user|>first<|end|><|assistant|>ok<|end|>"
                         "<|user|><|image_1|>What   is\nthis?<|end|><|assistant|>",
                  answer="A cat.", ttft_s=0.12345, tokens_per_s=41.26, completion_tokens=3,
                  user="", rating=None, tags=(), comment="")
    values.update(changes)
    return ReviewRow(**values)


def test_a_review_row_shows_each_column_in_order():
    [row] = eval_views.review_rows([review_row()])
    assert dict(zip(eval_views.REVIEW_COLUMNS, row, strict=True)) == {
        "id": "0123456789ab", "time (UTC)": "2026-03-04 05:06:07", "origin": "chat",
        "model": "tiny", "adapter": "none", "rating": "", "tags": "",
        "question": "[image] What is this?", "answer": "A cat.", "first token (s)": 0.123,
        "tok/s": 41.3, "asked by": "—"}


def test_a_rated_review_row_shows_its_thumb_tags_and_asker():
    rows = eval_views.review_rows([
        review_row(rating=1, tags=("good", "short"), user="ada", adapter="vision"),
        review_row(rating=-1), review_row(rating=0, ttft_s=None, tokens_per_s=None)])
    assert [row[5] for row in rows] == ["👍", "👎", "·"]
    assert rows[0][4] == "vision" and rows[0][6] == "good, short" and rows[0][11] == "ada"
    assert rows[2][9:11] == ["", ""]


def test_long_text_is_shortened_to_one_line():
    assert eval_views.shorten("a\n b  c") == "a b c"
    shortened = eval_views.shorten("word " * 40, limit=20)
    assert len(shortened) == 20 and shortened.endswith("…")


def test_last_question_without_a_user_turn_is_empty():
    assert eval_views.last_question("<|system|>x<|end|>") == ""
    assert eval_views.last_question("<|user|><|audio_1|><|audio_2|>Say?<|end|>") == (
        "[audio] [audio] Say?")


def test_escape_shows_markup_as_text():
    escaped = eval_views.escape("**bold** <b>x</b> [l](u)")
    assert "**" not in escaped and "<b>" not in escaped and "](" not in escaped


def test_batch_rows_follow_case_order_and_say_whether_the_expected_text_was_found():
    found = CaseResult(Case(2, "line 2", "c2", "Name it", expected="CAT"), answer="a cat")
    failed = CaseResult(Case(1, "line 1", "c1", "Broken"), error="line 1: no prompt")
    rows = eval_views.batch_rows([found, failed])
    assert [dict(zip(eval_views.BATCH_COLUMNS, row, strict=True)) for row in rows] == [
        {"case": 1, "id": "c1", "prompt": "Broken", "answer": "", "error": "line 1: no prompt",
         "expected found": "", "first token (s)": "", "tok/s": "", "tokens": "",
         "adapter": ""},
        {"case": 2, "id": "c2", "prompt": "Name it", "answer": "a cat", "error": "",
         "expected found": "yes", "first token (s)": "", "tok/s": "", "tokens": "",
         "adapter": ""}]


def test_the_batch_summary_escapes_its_notes():
    shown = eval_views.batch_summary(summarize([], 1.0), ["<img src=x>"])
    assert shown.startswith("**Done.**") and "<img" not in shown
