"""Turns read from the page's chat messages: Gradio's messages format, gradio_client's
shape of it, and the MultimodalTextbox's new message. Media stay references (`MediaRef`)
until the answer stream prepares them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from phi4ui.core.chat import MediaRef, Part, Turn
from phi4ui.core.history import file_path
from phi4ui.errors import BadInput


def turns_from_history(history: Sequence[Mapping[str, Any]]) -> list[Turn]:
    """Turns from a Gradio chat history (messages format, or gradio_client's shape).

    Messages that carry a metadata title are the page's own annotations
    (statistics, notes), not model output, and are skipped. Consecutive
    messages of one role merge into one turn.
    """
    turns: list[Turn] = []
    for message in history:
        metadata = message.get("metadata") or {}
        if metadata.get("title"):
            continue
        role = message.get("role")
        if role not in ("user", "assistant"):
            continue
        parts = tuple(_parts_of(message.get("content")))
        if not parts:
            continue
        if turns and turns[-1].role == role:
            turns[-1] = Turn(role, turns[-1].parts + parts)
        else:
            turns.append(Turn(role, parts))
    return turns


def turn_from_message(message: Mapping[str, Any] | str) -> Turn:
    """The person's new message: `{"text": ..., "files": [...]}` from a MultimodalTextbox."""
    if isinstance(message, str):
        message = {"text": message, "files": []}
    parts: list[Part] = [MediaRef(file_path(f)) for f in message.get("files") or []]
    text = (message.get("text") or "").strip()
    if text:
        parts.append(text)
    if not parts:
        raise BadInput("The message is empty: type something or attach an image or audio.")
    return Turn("user", tuple(parts))


def _parts_of(content: Any) -> Iterable[Part]:
    items = content if isinstance(content, list | tuple) else [content]
    for item in items:
        if item is None:
            continue
        if isinstance(item, str):
            if item.strip():
                yield item
        elif isinstance(item, Mapping):
            yield from _part_of_mapping(item)
        elif hasattr(item, "path"):  # a gradio FileData-like object
            yield MediaRef(str(item.path))


def _part_of_mapping(item: Mapping[str, Any]) -> Iterable[Part]:
    kind = item.get("type")
    if kind == "text" or (kind is None and "text" in item):
        if str(item.get("text", "")).strip():
            yield str(item["text"])
    elif kind == "file" or "file" in item or "path" in item:
        path = file_path(item.get("file", item))
        if path:
            yield MediaRef(path)
