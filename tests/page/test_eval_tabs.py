"""The evaluation tabs' handlers, run as the page runs them but without a browser: on a
real store, with the events Gradio would pass."""

from __future__ import annotations

import asyncio
import re

import gradio as gr
import pytest

from phi4ui.core import history as chat_history
from phi4ui.core.conversation import NOT_YOURS, Conversation
from phi4ui.errors import BadInput
from phi4ui.evaluation import replay
from phi4ui.evaluation.bundle import Bundle
from phi4ui.evaluation.store import Store
from phi4ui.page import eval_views
from phi4ui.page.batch_tab import BatchHandlers, load_cases, stopped_text
from phi4ui.page.chat_evaluation import NOT_RECORDED, RatingHandlers
from phi4ui.page.eval_common import Outputs, split_tags, tag_fields
from phi4ui.page.file_owners import FileOwners
from phi4ui.page.files import PageFiles
from phi4ui.page.replay_panel import ReplayHandlers, replayed
from phi4ui.page.review_tab import ReviewHandlers, build_review_tab
from phi4ui.page.runs_tab import build_runs_tab
from phi4ui.page.side_by_side_tab import SEND_FIRST, SideBySideHandlers
from tests.support.evalhelpers import record_for

SKIPPED = gr.skip()
UPLOAD_CASES = "Upload a .jsonl or .csv case file first."


@pytest.fixture()
def store(tmp_path):
    store = Store(tmp_path / "answers.db")
    yield store
    store.close()


@pytest.fixture()
def files(tmp_path):
    return PageFiles(FileOwners(tmp_path / "uploads"))


def chat_with(answer_id: str) -> Conversation:
    chat = Conversation()
    chat.messages = [{"role": "user", "content": "Where is Paris?"},
                     chat_history.mark({"role": "assistant", "content": "In France."},
                                       answer_id)]
    return chat


# ---------------------------------------------------------------- named outputs

def test_outputs_fill_the_named_values_in_wiring_order_and_skip_the_rest():
    outputs = Outputs("status", "table", "download")
    assert outputs(table=[[1]]) == (SKIPPED, [[1]], SKIPPED)
    assert outputs() == (SKIPPED, SKIPPED, SKIPPED)
    assert Outputs("status")(status="done") == "done"  # one output is its value, not a tuple
    with pytest.raises(TypeError, match="stats: not outputs of this event"):
        outputs(stats="x")


def test_outputs_list_the_components_of_a_tab_by_name():
    class Parts:
        status, table = "the status", "the table"

    assert Outputs("table", "status").components(Parts()) == ["the table", "the status"]


def test_tags_are_split_between_the_boxes_and_the_typed_field():
    assert split_tags(["wrong", 3], "noise, odd") == ["wrong", "noise", " odd"]
    assert split_tags(None, None) == [""]
    assert tag_fields(["wrong", "noise", "great", "odd"]) == (["wrong", "great"], "noise, odd")


# ---------------------------------------------------------------- rating under the chat

def test_a_thumb_rates_the_session_answer_and_fills_the_fields(store, files):
    answer_id = store.add_answer(record_for("Where is Paris?")).answer_id
    store.rate(answer_id, None, comment="Short.", tags=["great", "terse"])
    handlers = RatingHandlers(store, files)

    rated, status, comment, tags, more = asyncio.run(handlers.on_like(
        chat_with(answer_id), gr.LikeData(None, {"index": 1, "value": "", "liked": False})))

    assert rated == answer_id and store.rating(answer_id).score == -1
    assert status.startswith(f"Rated answer `{answer_id[:8]}` **down**.")
    assert (comment, tags, more) == ("Short.", ["great"], "terse")


def test_a_thumb_on_an_answer_not_recorded_changes_nothing(store, files):
    chat = Conversation()
    chat.messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    with pytest.warns(UserWarning, match=NOT_RECORDED):
        shown = asyncio.run(RatingHandlers(store, files).on_like(
            chat, gr.LikeData(None, {"index": 1, "value": "", "liked": True})))
    assert shown == (SKIPPED,) * 5


def test_saved_tags_are_shown_as_text(store, files):
    answer_id = store.add_answer(record_for("q")).answer_id
    saved = asyncio.run(RatingHandlers(store, files).on_save(answer_id, "why", ["wrong"],
                                                             "<b>*bold*</b>"))
    assert saved.startswith(f"Saved for answer `{answer_id[:8]}` (rated **no thumbs**): ")
    assert "<b>" not in saved and "*bold*" not in saved
    assert store.rating(answer_id).tags == ("wrong", "<b>*bold*</b>")


# ---------------------------------------------------------------- side by side

def test_presets_set_both_sides_and_the_vote_needs_a_pair(store, files):
    handlers = SideBySideHandlers({"embedded": None}, store, files)  # type: ignore[dict-item]
    assert handlers.on_preset("Two temperatures") == ["embedded", "auto", 0.0,
                                                      "embedded", "auto", 1.0]
    said = asyncio.run(handlers.on_vote(None, "", winner="left"))
    assert said == eval_views.escape(SEND_FIRST)


# ---------------------------------------------------------------- batch

def test_a_run_without_cases_says_so_in_the_status(files):
    handlers = BatchHandlers(None, None, files, 10)  # type: ignore[arg-type]

    async def run() -> list:
        return [view async for view in handlers.on_run(None, 2, 16, 0.0, "", None)]

    with pytest.warns(UserWarning, match=re.escape(UPLOAD_CASES)):
        [view] = asyncio.run(run())
    assert view.status.replace("\\", "") == f"⚠️ {UPLOAD_CASES}"
    assert view.rows == [] and view.csv.visible is False and view.json.visible is False
    assert asyncio.run(handlers.on_stop()) == stopped_text(False)
    with pytest.raises(BadInput, match=re.escape(UPLOAD_CASES)):
        load_cases([], 10, None)  # type: ignore[arg-type]


# ---------------------------------------------------------------- review and replay

def test_review_finds_selects_and_rates_an_answer(store, files):
    answer_id = store.add_answer(record_for("about cats", answer="Cats purr.")).answer_id
    handlers = ReviewHandlers(store, files)

    table, found, _ = asyncio.run(handlers.on_search("any", "", "", "", "", "cats"))
    assert found == [answer_id] and table[0][0] == answer_id[:eval_views.SHORT_ID]
    selected = gr.SelectData(None, {"index": [0, 2], "value": "", "row_value": table[0]})
    chosen, details, *_ = asyncio.run(handlers.on_select(found, selected))
    assert chosen == answer_id and "Cats purr" in details
    asyncio.run(handlers.on_annotate(answer_id, "fine", ["great"], "furry"))
    details, comment, tags, more = asyncio.run(handlers.on_thumbs(answer_id, score=1))
    assert (comment, tags, more) == ("fine", ["great"], "furry")
    assert store.rating(answer_id).score == 1


def test_a_bad_search_warns_and_leaves_the_table(store, files):
    with pytest.warns(UserWarning):
        shown = asyncio.run(ReviewHandlers(store, files).on_search("any", "", "", "tomorrow",
                                                                   "", ""))
    assert shown == (SKIPPED,) * 3


def test_a_replay_of_a_file_not_uploaded_here_is_refused_as_text(store, files, tmp_path):
    handlers = ReplayHandlers(None, store, files)  # type: ignore[arg-type]

    async def said(path: object) -> list[str]:
        return [line async for line in handlers.on_replay(path, None)]

    assert asyncio.run(said(None)) == ["Upload a bundle first\\."]
    assert asyncio.run(said(str(tmp_path / "b.zip"))) == [eval_views.escape(NOT_YOURS)]


def test_each_replayed_outcome_comes_as_the_replay_reports_it(tmp_path):
    records = [record_for("one"), record_for("two")]

    async def outcomes() -> list[replay.ReplayOutcome]:
        # Without an engine every record is refused, one by one, and the replay goes on.
        return [o async for o in replayed(None, Bundle(records, tmp_path), None, "")]  # type: ignore[arg-type]

    shown = asyncio.run(outcomes())
    assert [type(o) for o in shown] == [replay.ReplayRefused, replay.ReplayRefused]
    assert [str(o).split(":")[0] for o in shown] == [f"Record {r.id}" for r in records]


# ---------------------------------------------------------------- tabs of everyone's records

@pytest.mark.parametrize(("build", "needs_login"), [
    (lambda store, files, may: build_review_tab(store, None, files, everyone_may_review=may),
     "review-needs-login"),
    (lambda store, files, may: build_runs_tab(store, files, everyone_may_review=may),
     "runs-need-login")], ids=["review", "runs"])
def test_tabs_of_everyones_records_are_empty_on_a_public_address_without_a_login(
        store, files, build, needs_login):
    def elem_ids(may_review: bool) -> set[str]:
        with gr.Blocks() as page:
            build(store, files, may_review)
        return {b.elem_id for b in page.blocks.values() if getattr(b, "elem_id", None)}

    public = elem_ids(False)
    assert needs_login in public
    private = elem_ids(True)
    assert needs_login not in private
    # The public tab holds nothing but the tab, its message and its label.
    assert len(public) < 4 < len(private)
