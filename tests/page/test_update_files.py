"""`walk_chat_updates_once_per_file`: each streamed chat update is what Gradio's own walk
makes of it, with the files Gradio keeps in its upload folder answered from memory after the
first time; anything else, a refused file above all, goes through Gradio every time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from gradio import processing_utils
from gradio import utils as gradio_utils
from gradio.context import LocalContext
from gradio.exceptions import InvalidPathError

from phi4ui.page import update_files
from phi4ui.page.update_files import walk_chat_updates_once_per_file


@pytest.fixture
def page() -> Iterator[dict[str, Any]]:
    walk_chat_updates_once_per_file()
    update_files._answers.clear()
    with gr.Blocks(analytics_enabled=False) as demo:
        chat = gr.Chatbot()
        image = gr.Image()
    demo.has_launched = True  # Gradio checks files only for a launched page
    token = LocalContext.blocks.set(demo)
    try:
        yield {"chat": chat, "image": image}
    finally:
        LocalContext.blocks.reset(token)


def uploaded(name: str = "photo.png") -> str:
    """A file where Gradio keeps uploads: a folder named by a hash, a plain file in it."""
    folder = Path(gradio_utils.get_upload_folder()) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    (folder / name).write_bytes(b"not checked for content here")
    return str(folder / name)


def chat_value(paths: list[str]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for path in paths:
        messages += [{"role": "user", "content": {"path": path}},
                     {"role": "user", "content": "What is in it?"},
                     {"role": "assistant", "content": "An answer."}]
    return messages


def walk(block: Any, value: Any, by_gradio: bool = False) -> Any:
    """What is done with an update of `block` before it is sent: by the app, or by Gradio."""
    walker = processing_utils.async_move_files_to_cache
    if by_gradio:
        walker = walker.__wrapped__  # type: ignore[attr-defined]
    return asyncio.run(walker(block.postprocess(value), block, postprocess=True))


def test_a_chat_update_is_what_gradio_makes_of_it_and_each_file_is_handled_once(
        page: dict[str, Any]) -> None:
    chat, paths = page["chat"], [uploaded() for _ in range(3)]
    value = chat_value(paths)
    expected = walk(chat, value, by_gradio=True)
    assert walk(chat, value) == expected
    assert len(update_files._answers) == 3
    value.append({"role": "assistant", "content": "More text as the answer streams."})
    assert walk(chat, value) == walk(chat, value, by_gradio=True)
    assert len(update_files._answers) == 3  # the files were answered from memory


def test_an_answer_given_out_can_be_changed_without_changing_the_next(
        page: dict[str, Any]) -> None:
    chat, value = page["chat"], chat_value([uploaded()])
    first = walk(chat, value)
    first[0]["content"][0]["file"]["url"] = "https://elsewhere.example/x.png"  # Gradio does
    assert walk(chat, value) == walk(chat, value, by_gradio=True)


@pytest.mark.parametrize("refused", ["/etc/passwd", "escaping", "blocked"])
def test_a_refused_file_is_refused_on_every_update(page: dict[str, Any],
                                                   refused: str) -> None:
    kept = uploaded()
    if refused == "escaping":
        refused = os.path.join(os.path.dirname(kept), *[".."] * 8, "etc", "passwd")
    elif refused == "blocked":
        refused = uploaded()
        walk(page["chat"], chat_value([refused]))  # let through once, then blocked
        LocalContext.blocks.get().blocked_paths = [os.path.dirname(refused)]
    for _ in range(2):
        with pytest.raises(InvalidPathError):
            walk(page["chat"], chat_value([kept, refused]))


def test_a_file_let_through_before_launch_is_checked_again_after(
        page: dict[str, Any]) -> None:
    blocked = uploaded()
    launched = LocalContext.blocks.get()
    launched.blocked_paths = [os.path.dirname(blocked)]
    launched.has_launched = False  # Gradio lets any file through before launch
    walk(page["chat"], chat_value([blocked]))
    launched.has_launched = True
    with pytest.raises(InvalidPathError):
        walk(page["chat"], chat_value([blocked]))


def test_a_dotfile_is_never_answered_from_memory(page: dict[str, Any]) -> None:
    value = chat_value([uploaded(".hidden.png")])
    for _ in range(2):
        with contextlib.suppress(InvalidPathError):  # refused or not, Gradio decides
            walk(page["chat"], value)
    assert not update_files._answers


def test_other_outputs_are_walked_by_gradio(page: dict[str, Any]) -> None:
    image = page["image"]
    path = uploaded()
    assert walk(image, path) == walk(image, path, by_gradio=True)
    assert not update_files._answers
