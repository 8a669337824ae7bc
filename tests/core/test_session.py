from __future__ import annotations

from phi4ui.core.session_summary import SessionSummary
from tests.core.test_history import stats


def test_summary_of_no_answers() -> None:
    assert SessionSummary().text() == "This session: no answers yet."


def test_means_over_the_answers_that_report_them() -> None:
    summary = (SessionSummary().add(stats(ttft_s=0.1, decode_tokens_per_s=40.0))
               .add(stats(ttft_s=0.3, decode_tokens_per_s=60.0, completion_tokens=8))
               .add(stats(ttft_s=None, decode_tokens_per_s=None, completion_tokens=0)))
    assert summary.answers == 3
    assert summary.mean_ttft_s == 0.2
    assert summary.mean_tokens_per_s == 50.0
    assert summary.text() == ("This session: 3 answers · mean first token 200 ms · "
                              "mean 50.0 tok/s · 40 tokens generated")


def test_adding_leaves_the_old_summary_alone() -> None:
    empty = SessionSummary()
    one = empty.add(stats(ttft_s=1.5))
    assert empty.answers == 0 and one.answers == 1
    assert "mean first token 1.50 s" in one.text() and "1 answer ·" in one.text()


def test_update_pacer_spaces_updates_as_streams_grow():
    from phi4ui.core.answer_stream import UpdatePacer

    pacer = UpdatePacer(min_interval_s=0.03, max_interval_s=0.5, max_updates_per_s=200)
    assert pacer.interval() == 0.03
    pacer.active = 64
    assert pacer.interval() == 64 / 200
    pacer.active = 1000
    assert pacer.interval() == 0.5  # every answer still moves at least this often
