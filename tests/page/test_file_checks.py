"""`remember_file_checks`: Gradio checks every file of an output's value each time it sends
it (for the chat, every streamed update re-checks every file of the conversation); the
workaround remembers the answer for files in Gradio's upload folder and nothing else.
Run through Gradio's own `async_move_files_to_cache` on a launched-like Blocks."""

from __future__ import annotations

import asyncio
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
from gradio.data_classes import FileData, _StaticFiles
from gradio.exceptions import InvalidPathError

from phi4ui.page.gradio_workarounds import remember_file_checks

PATCHED = [(gradio_utils, "is_in_or_equal"), (gradio_utils, "get_upload_folder"),
           (gradio_utils, "is_static_file"), (processing_utils, "_check_allowed"),
           (processing_utils, "async_move_files_to_cache")]


@pytest.fixture(autouse=True)
def unpatched_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gradio's own checks for each test: the app's pages built by earlier tests in this
    process installed the workaround for the upload folder of their time."""
    for module, name in PATCHED:
        current = getattr(module, name)
        monkeypatch.setattr(module, name, getattr(current, "__wrapped__", current))


@pytest.fixture
def chatbot() -> Iterator[gr.Chatbot]:
    with gr.Blocks(analytics_enabled=False) as demo:
        chat = gr.Chatbot()
    demo.has_launched = True  # Gradio checks files only for a launched page
    token = LocalContext.blocks.set(demo)
    try:
        yield chat
    finally:
        LocalContext.blocks.reset(token)


def uploaded_files(count: int) -> list[str]:
    """Files where Gradio keeps uploads: a folder named by a hash, a plain file in it."""
    paths = []
    for n in range(count):
        folder = Path(gradio_utils.get_upload_folder()) / uuid.uuid4().hex
        folder.mkdir(parents=True)
        (folder / f"photo{n}.png").write_bytes(b"not checked for content here")
        paths.append(str(folder / f"photo{n}.png"))
    return paths


def chat_value(paths: list[str]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for path in paths:
        messages += [{"role": "user", "content": {"path": path}},
                     {"role": "assistant", "content": "An answer."}]
    return messages


def send(chat: gr.Chatbot, value: list[dict[str, Any]]) -> Any:
    """What Gradio does with a streamed update of the chat before sending it."""
    return asyncio.run(processing_utils.async_move_files_to_cache(
        chat.postprocess(value), chat, postprocess=True))


def resolves_per_update(chat: gr.Chatbot, value: list[dict[str, Any]],
                        monkeypatch: pytest.MonkeyPatch) -> int:
    """How many times the files of the chat are resolved (`realpath`) for one update."""
    calls = [0]
    realpath = os.path.realpath
    inside = os.path.join(gradio_utils.get_upload_folder(), "")

    def counted(path: Any, *args: Any, **kwargs: Any) -> str:
        calls[0] += str(path).startswith(inside)
        return realpath(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os.path, "realpath", counted)
        send(chat, value)
    return calls[0]


def test_gradio_resolves_every_file_of_the_chat_again_on_every_update(
        chatbot: gr.Chatbot, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Gradio behaviour the workaround relies on: the cost of an update grows with
    the files of the whole conversation, however often they were sent before."""
    gradio_own = getattr(gradio_utils.is_in_or_equal, "__wrapped__",
                         gradio_utils.is_in_or_equal)
    monkeypatch.setattr(gradio_utils, "is_in_or_equal", gradio_own)
    two, six = chat_value(uploaded_files(2)), chat_value(uploaded_files(6))
    send(chatbot, six)
    assert resolves_per_update(chatbot, six, monkeypatch) >= 3 * 6
    assert resolves_per_update(chatbot, six, monkeypatch) > resolves_per_update(
        chatbot, two, monkeypatch)


def test_remembered_checks_resolve_an_uploaded_file_once(
        chatbot: gr.Chatbot, monkeypatch: pytest.MonkeyPatch) -> None:
    remember_file_checks()
    value = chat_value(uploaded_files(6))
    first = send(chatbot, value)
    assert resolves_per_update(chatbot, value, monkeypatch) == 0
    assert send(chatbot, value) == first  # the same urls as when checked


def test_paths_outside_the_upload_folder_are_still_refused_every_time(
        chatbot: gr.Chatbot) -> None:
    remember_file_checks()
    [uploaded] = uploaded_files(1)
    send(chatbot, chat_value([uploaded]))
    escaping = os.path.join(os.path.dirname(uploaded), "..", "..", "..", "..", "..", "..",
                            "etc", "passwd")
    for _ in range(2):
        for path in ("/etc/passwd", escaping):
            with pytest.raises(InvalidPathError):
                send(chatbot, chat_value([path]))


def test_a_link_placed_in_the_upload_folder_is_not_remembered_as_inside(
        chatbot: gr.Chatbot, tmp_path: Path) -> None:
    """Gradio writes no links there; one put there otherwise still leads nowhere outside:
    its target is resolved and refused, the first time and every time after."""
    remember_file_checks()
    outside = Path("/etc/hostname") if Path("/etc/hostname").exists() else Path("/etc/passwd")
    folder = Path(gradio_utils.get_upload_folder()) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    link = folder / "link.png"
    link.symlink_to(outside)
    for _ in range(2):
        with pytest.raises(InvalidPathError):
            send(chatbot, chat_value([str(link)]))


def system_calls_per_update(chat: gr.Chatbot, value: list[dict[str, Any]],
                            monkeypatch: pytest.MonkeyPatch) -> int:
    """The system calls Gradio's file checks make for one update: `stat`, `lstat` (each
    folder of a path resolved) and `getcwd`, each of which gives up Python's lock."""
    calls = [0]

    def counted(call: Any) -> Any:
        def count(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            return call(*args, **kwargs)
        return count

    with monkeypatch.context() as patch:
        for name in ("stat", "lstat", "getcwd"):
            patch.setattr(os, name, counted(getattr(os, name)))
        send(chat, value)
    return calls[0]


def test_an_update_of_uploaded_files_makes_no_system_call_once_checked(
        chatbot: gr.Chatbot, monkeypatch: pytest.MonkeyPatch) -> None:
    value = chat_value(uploaded_files(6))
    assert system_calls_per_update(chatbot, value, monkeypatch) >= 6 * 4  # Gradio's own
    remember_file_checks()
    first = send(chatbot, value)
    assert system_calls_per_update(chatbot, value, monkeypatch) == 0
    assert send(chatbot, value) == first


def test_a_file_the_page_blocks_is_refused_every_time_even_after_it_was_let_through(
        chatbot: gr.Chatbot) -> None:
    remember_file_checks()
    [uploaded] = uploaded_files(1)
    send(chatbot, chat_value([uploaded]))
    page = LocalContext.blocks.get()
    page.blocked_paths = [os.path.dirname(uploaded)]
    for _ in range(2):
        with pytest.raises(InvalidPathError):
            send(chatbot, chat_value([uploaded]))
    page.blocked_paths = []
    send(chatbot, chat_value([uploaded]))


def test_a_dotfile_is_checked_every_time(chatbot: gr.Chatbot,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Gradio refuses a file whose name starts with a dot when it lies in the working
    folder: a check that depends on where the process is, so it is never remembered."""
    remember_file_checks()
    folder = Path(gradio_utils.get_upload_folder()) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    dotfile = folder / ".env"
    dotfile.write_text("SECRET=1")
    send(chatbot, chat_value([str(dotfile)]))  # the working folder is elsewhere
    monkeypatch.chdir(folder)
    for _ in range(2):
        with pytest.raises(InvalidPathError):
            send(chatbot, chat_value([str(dotfile)]))


def test_an_unlaunched_page_lets_files_through_unremembered(chatbot: gr.Chatbot) -> None:
    """Gradio checks files only once the page is launched; one let through before is
    checked again after."""
    remember_file_checks()
    [uploaded] = uploaded_files(1)
    page = LocalContext.blocks.get()
    page.has_launched = False
    page.blocked_paths = [os.path.dirname(uploaded)]
    send(chatbot, chat_value([uploaded]))
    page.has_launched = True
    with pytest.raises(InvalidPathError):
        send(chatbot, chat_value([uploaded]))


def test_the_upload_folder_is_still_the_one_gradio_names(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    gradio_own = gradio_utils.get_upload_folder()
    remember_file_checks()
    assert gradio_utils.get_upload_folder() == gradio_own
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    assert gradio_utils.get_upload_folder() == str(tmp_path)
    monkeypatch.delenv("GRADIO_TEMP_DIR")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    assert gradio_utils.get_upload_folder() == str((tmp_path / "gradio").resolve())


def test_static_files_are_still_found_in_static_paths(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside every static path an uploaded file is no static file, existing or not; in
    one, it is one only while it exists, as Gradio answers."""
    remember_file_checks()
    [uploaded] = uploaded_files(1)
    assert _StaticFiles.all_paths  # Gradio's own icons
    assert not gradio_utils.is_static_file(FileData(path=uploaded))
    assert not gradio_utils.is_static_file(uploaded + ".missing")
    monkeypatch.setattr(_StaticFiles, "all_paths",
                        [*_StaticFiles.all_paths, Path(os.path.dirname(uploaded)).resolve()])
    for _ in range(2):
        assert gradio_utils.is_static_file(FileData(path=uploaded))
        assert gradio_utils.is_static_file(uploaded)
        assert not gradio_utils.is_static_file(uploaded + ".missing")
