"""The chat as the page shows it (Gradio's messages format), and what sending, retry,
undo, edit and stop do to it. Pure functions on plain dicts; no Gradio import.

An answer is the assistant's text followed by its annotations: assistant messages
with a metadata title (statistics, prompt notes, "stopped", errors). The prompt
builder skips annotations; retry, undo and edit remove them with their answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from phi4ui.core.stats import RequestStats
from phi4ui.errors import BadInput

Message = dict[str, Any]
History = list[Message]

STATS_PREFIX = "Statistics · "
NOTES_TITLE = "Prompt notes"
STOPPED_TITLE = "Stopped"
INTERRUPTED_TITLE = "Answer interrupted"


def is_annotation(message: Mapping[str, Any]) -> bool:
    return bool((message.get("metadata") or {}).get("title"))


def user_messages(message: Mapping[str, Any]) -> History:
    """The chat messages for a MultimodalTextbox value `{"text": ..., "files": [...]}`: the
    attachments, then the text. Apart, because Gradio edits only a message of text alone."""
    messages: History = []
    if paths := files_of(message):
        messages.append({"role": "user", "content": [{"path": path} for path in paths]})
    text = str(message.get("text") or "")
    if text.strip():
        messages.append({"role": "user", "content": text})
    return messages


def files_of(message: Mapping[str, Any]) -> list[str]:
    return [path for path in (file_path(f) for f in message.get("files") or []) if path]


def annotation(title: str, text: str) -> Message:
    return {"role": "assistant", "content": text, "metadata": {"title": title, "status": "done"}}


def answer_annotations(stats: RequestStats, notes: Sequence[str]) -> History:
    """The collapsed statistics under an answer, then its prompt notes if any."""
    messages = [annotation(STATS_PREFIX + stats.summary(), stats.details())]
    if notes:
        messages.append(annotation(NOTES_TITLE, "\n".join(f"- {note}" for note in notes)))
    return messages


def with_stop_noted(history: Sequence[Mapping[str, Any]],
                    stats: RequestStats | None = None) -> History:
    """After an answer ended early by Stop: says so under it, with what was measured of
    it so far, unless it already ended with an annotation (statistics or an error)."""
    shown = [dict(m) for m in history]
    if not shown or is_annotation(shown[-1]):
        return shown
    if shown[-1].get("role") == "user" and not (stats and stats.completion_tokens):
        return [*shown, annotation(STOPPED_TITLE, "Stopped before the answer began.")]
    note = "Stopped by you; the answer is incomplete."
    if stats is None:
        return [*shown, annotation(STOPPED_TITLE, note)]
    return [*shown, annotation(f"{STOPPED_TITLE} · {stats.summary()}",
                               f"{note}\n\n{stats.details()}")]


def last_user_span(history: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(start, end) of the newest run of user messages; raises `BadInput` without one."""
    end = len(history)
    while end > 0 and history[end - 1].get("role") != "user":
        end -= 1
    start = end
    while start > 0 and history[start - 1].get("role") == "user":
        start -= 1
    if end == 0:
        raise BadInput("There is no message to answer again yet.")
    return start, end


def for_retry(history: Sequence[Mapping[str, Any]]) -> History:
    """The history up to the newest user message: its answer and annotations removed."""
    _, end = last_user_span(history)
    return [dict(m) for m in history[:end]]


def undo(history: Sequence[Mapping[str, Any]]) -> tuple[History, dict[str, Any]]:
    """The history without the newest user message and its answer, and that message as a
    MultimodalTextbox value, to put back in the input."""
    start, end = last_user_span(history)
    texts: list[str] = []
    files: list[str] = []
    for message in history[start:end]:
        text, paths = split_content(message.get("content"))
        texts += [text] if text else []
        files += paths
    return [dict(m) for m in history[:start]], {"text": "\n".join(texts), "files": files}


def for_edit(history: Sequence[Mapping[str, Any]], index: int, text: str) -> History:
    """The history up to the edited user message, which gets the new text and keeps any
    attachments. `history` is the conversation as it was before the edit."""
    if not 0 <= index < len(history) or history[index].get("role") != "user":
        raise BadInput("Only your own messages can be edited.")
    _, files = split_content(history[index].get("content"))
    edited = user_messages({"text": text, "files": files})
    if not edited:
        raise BadInput("The edited message is empty: type something.")
    return [*(dict(m) for m in history[:index]), *edited]


def split_content(content: Any) -> tuple[str, list[str]]:
    """(text, file paths) of one message's content, in any of Gradio's shapes."""
    items = content if isinstance(content, list | tuple) else [content]
    texts: list[str] = []
    files: list[str] = []
    for item in items:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, Mapping):
            if item.get("type") == "text" or ("text" in item and "file" not in item):
                texts.append(str(item.get("text") or ""))
            elif path := file_path(item.get("file", item)):
                files.append(path)
    return "\n".join(t for t in texts if t), files


def file_path(file: Any) -> str:
    """The path of a file as Gradio hands it over: a string, a dict or a FileData."""
    if isinstance(file, str):
        return file
    if isinstance(file, Mapping):
        return str(file.get("path") or "")
    return str(getattr(file, "path", "") or "")


# ---------------------------------------------------------------- record ids
# Each recorded answer carries `{"metadata": {"id": answer_id}}` (no title, so it still
# shows as a plain answer); ratings and exports find the record through it, and the next
# answer links to it as its parent, which is how a conversation's answers are chained.

def mark(message: Mapping[str, Any], answer_id: str) -> dict[str, Any]:
    """The answer message carrying its record id."""
    metadata = {**(message.get("metadata") or {}), "id": answer_id}
    return {**message, "metadata": metadata}


def answer_ids(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """The record ids of the recorded answers in a chat history, oldest first."""
    ids = []
    for message in history:
        metadata = message.get("metadata") or {}
        if message.get("role") == "assistant" and metadata.get("id") and not metadata.get("title"):
            ids.append(str(metadata["id"]))
    return ids


def last_answer_id(history: Sequence[Mapping[str, Any]]) -> str | None:
    ids = answer_ids(history)
    return ids[-1] if ids else None


def answer_id_at(history: Sequence[Mapping[str, Any]], index: int | Sequence[int]) -> str | None:
    """The record id of the answer a like event points at: the message itself, or, for an
    annotation under an answer, the answer above it."""
    position = index if isinstance(index, int) else index[0]
    for message in reversed(history[:position + 1]):
        metadata = message.get("metadata") or {}
        if message.get("role") != "assistant":
            return None
        if metadata.get("id") and not metadata.get("title"):
            return str(metadata["id"])
    return None
