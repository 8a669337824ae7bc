"""The leaderboard in Review: votes written straight into the app's record, between two
configurations of known strengths, come out ranked in the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from phi4ui.evaluation.store import Store
from tests.browser.chatpage import ChatPage
from tests.browser.test_evaluation import open_tab, table_rows
from tests.support.votes import seed_votes

pytestmark = pytest.mark.browser


def test_review_shows_the_leaderboard_of_the_voted_configurations(chat: ChatPage,
                                                                  app_db: Path) -> None:
    store = Store(app_db)
    try:
        labels = seed_votes(store, [2.0, -2.0], 24, seed=11)
    finally:
        store.close()

    open_tab(chat.page, "Review")
    chat.page.locator("#leaderboard").click()
    rows = table_rows(chat.page, "leaderboard-table")
    expect(rows.filter(has_text=labels[0.2])).to_have_count(1, timeout=15_000)
    shown = [row.inner_text() for row in rows.all()]
    stronger = next(i for i, text in enumerate(shown) if labels[0.1] in text)
    weaker = next(i for i, text in enumerate(shown) if labels[0.2] in text)
    assert stronger < weaker
    expect(chat.page.locator("#leaderboard-summary")).to_contain_text("votes between")
    expect(chat.page.locator("#leaderboard-about")).to_contain_text("same conversation")
    chat.page.locator("#leaderboard-summary").scroll_into_view_if_needed()
    chat.shot("eval-06-leaderboard")
