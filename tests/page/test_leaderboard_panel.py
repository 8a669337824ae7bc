"""The review tab's leaderboard handler on a real store, with the values a browser sends."""

from __future__ import annotations

import asyncio

import pytest

from phi4ui.evaluation.store import Store
from phi4ui.page.leaderboard_panel import COLUMNS, LeaderboardHandlers
from tests.support.votes import answer_by, seed_votes


@pytest.fixture()
def store(tmp_path):
    store = Store(tmp_path / "answers.db")
    yield store
    store.close()


def test_the_table_ranks_the_seeded_configurations(store: Store) -> None:
    labels = seed_votes(store, [-2.0, 2.0], 30)
    table, summary = asyncio.run(LeaderboardHandlers(store).on_show(False))

    assert [row[1] for row in table] == [labels[0.2], labels[0.1]]
    assert all(len(row) == len(COLUMNS) for row in table)
    assert table[0][4] == "30" and "30 votes between 2 configurations" in summary


def test_thumbs_count_only_when_the_box_is_really_ticked(store: Store) -> None:
    up = store.add_answer(answer_by(0.1, "Same?")).answer_id
    down = store.add_answer(answer_by(0.2, "Same?")).answer_id
    store.rate(up, 1)
    store.rate(down, -1)
    handlers = LeaderboardHandlers(store)

    table, summary = asyncio.run(handlers.on_show("yes"))  # not a checkbox's value
    assert table == [] and "No votes yet" in summary
    table, summary = asyncio.run(handlers.on_show(True))
    assert len(table) == 2 and "1 of them from thumbs" in summary
