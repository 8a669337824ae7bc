"""The page's ways around Gradio's behaviour, in one place: the Python side, and the CSS and
JavaScript it puts on the page. Each is written for Gradio 6.31 and says which behaviour it
works around; `tests/page/test_gradio_behaviour.py` (over HTTP) and
`tests/browser/test_gradio_behaviour.py` (in Chromium) check each of those behaviours on a
small Blocks of their own, so that an upgrade that changes one fails there first.

The chat's steps that check a message are not queued: a queued event costs a join, an SSE
stream and the queue's bookkeeping, and the time to first token passes through them. These
workarounds make a refusal of such a step look as a queued one would.

"""

from __future__ import annotations

import functools
import os
import stat
import tempfile
import types
from collections.abc import Callable, Iterable
from html import escape
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import gradio as gr
from gradio import processing_utils, route_utils
from gradio import utils as gradio_utils
from gradio.context import LocalContext
from gradio.data_classes import FileData, _StaticFiles

from phi4ui.errors import Phi4UIError

# Works around: on every streamed update of any step, the page's browser side refreshes the
# loading status of each component that has ever been a progress target (by default an
# output) of any step that ran on the page, and each refresh copies all of that component's
# properties. With the chat's settings, input and engine panel among them, that walk took
# about 7 ms of the browser's CPU per update of an answer, against under 2 ms on a minimal
# chat page. A step whose progress is hidden names no component to show it on, so its
# outputs never join the walk.
NO_PROGRESS: dict[str, Any] = {"show_progress": "hidden", "show_progress_on": []}
INTERNAL: dict[str, Any] = {**NO_PROGRESS, "api_visibility": "undocumented"}
Result = TypeVar("Result")

# Switches the input's Send button for its Stop button while an answer is written, in the
# browser: no round trip, and no component update for Gradio to rebuild (see CSS).
ANSWERING_JS = "() => {{ document.body.classList.toggle('p4-answering', {on}); }}"
# The same, Send back, for a `.failure` step with a backend function: Gradio's browser runs no
# `.then` step after a failed one. It passes the step's inputs through.
ANSWERED_JS = ("(...inputs) => { document.body.classList.toggle('p4-answering', false); "
               "return inputs; }")

# Sending, in the browser: the message moves from the input to the hidden component the send
# step reads, with an id of this send, Stop shows and the cost line empties; while an answer
# is written, sending waits and nothing moves (the error ends the event chain there; the
# server would refuse a second answer too).
SEND_JS = """(message) => {
  if (document.body.classList.contains('p4-answering')) {
    throw new Error('an answer is still being written');
  }
  document.body.classList.add('p4-answering');
  window.p4Sends = (window.p4Sends || 0) + 1;
  window.p4Emptied = true;
  return [{text: '', files: []}, message, String(window.p4Sends), ''];
}"""
# The cost preview, in the browser: the input that sending just emptied needs no request
# (sending emptied the cost line itself, and an empty input's line is empty); any other
# change asks the server.
PREVIEW_JS = """(message, ...rest) => {
  const emptied = window.p4Emptied;
  window.p4Emptied = false;
  if (emptied && !(message && (message.text || (message.files || []).length))) {
    throw new Error('the input was emptied by sending');
  }
  return [message, ...rest];
}"""

CSS = """
/* Send or Stop: the input shows Send, or Stop while an answer is written (the body's
   p4-answering class, set by `answering_js`). */
body:not(.p4-answering) #mm button[aria-label="Stop"],
body.p4-answering #mm [data-testid="submit-button"] {
  display: none !important;
}

/* The error veil: a refused message is told by a toast and changes nothing. Gradio would
   also veil the chat and the input (the outputs of the refused step) with its "Error"
   badge, hiding the conversation; the chat's events show no other progress, so the veil
   is never needed. */
#chatbot .wrap:has(> .error),
#mm .wrap:has(> .error) {
  display: none !important;
}
"""


class Refusal:
    """Why the last step was refused, kept in a `gr.State` for `tell_refusal`.

    Works around: Gradio shows no toast (`gr.Warning`, `gr.Info`) raised in a step that is not
    queued; the message is only printed on the server. A refusing step therefore ends its
    event chain with an error that has no toast of its own (`gr.Error(visible=False)`), and
    the queued step `tell_refusal`, chained with `.failure`, shows the reason kept here."""

    def __init__(self) -> None:
        self.reason = ""

    def refuse(self, reason: str) -> NoReturn:
        self.reason = reason
        raise gr.Error(escape(reason), visible=False, print_exception=False)

    def refuse_if(self, condition: bool, reason: str) -> None:
        if condition:
            self.refuse(reason)

    def unless_fails(self, function: Callable[..., Result], *args: Any) -> Result:
        try:
            return function(*args)
        except Phi4UIError as error:
            self.refuse(str(error))


async def tell_refusal(refusal: Refusal) -> None:
    """Queued, so that its toast shows: why the step before was refused."""
    if refusal.reason:
        gr.Warning(escape(refusal.reason))
        refusal.reason = ""


def tell_refusals(refusable: Iterable[Any], refusal: gr.State) -> None:
    """After each of the `refusable` unqueued events, a queued step that tells why it failed."""
    for event in refusable:
        event.failure(tell_refusal, [refusal], None, concurrency_limit=None, **INTERNAL)


def answering_js(on: bool) -> str:
    """The browser-side step that shows Stop (`on`) or Send in the input.

    Works around: `gr.MultimodalTextbox` shows its Send and Stop buttons as its `submit_btn`
    and `stop_btn` say, and switching them means returning an update of the whole textbox,
    which Gradio rebuilds (as `gr.ChatInterface` does). Both buttons stay on, and this class
    with `CSS` hides the one that does not apply."""
    return ANSWERING_JS.format(on="true" if on else "false")


def then_as_if_changed(event: Any, on_change: Callable[..., Any], inputs: list[Any],
                       outputs: list[Any]) -> None:
    """Runs `on_change` after `event`, whose step sets a `gr.MultimodalTextbox`'s files.

    Works around: Gradio fires the textbox's change event for a value a step sets when its
    text changes, but not when only its files do (a photo attached from the camera)."""
    event.then(on_change, inputs, outputs, queue=False, **INTERNAL)


# ---------------------------------------------------------------- the file checks of an update

FILE_CHECKS_REMEMBERED = 65536  # pairs of paths, or files let through; a few MB at most


def remember_file_checks() -> None:
    """Works around: Gradio checks every file of an output's value each time the value is
    sent, and for a chat that is every streamed update, with every image and audio clip of
    the whole conversation, on the event loop: whether the file is a static file (a `stat`
    of it, then `gradio.utils.is_in_or_equal` against each static path), whether it may be
    served (`_check_allowed`: the upload folder resolved again, `getcwd` twice, and
    `is_in_or_equal` against each allowed folder) and whether it is in the cache, where
    `is_in_or_equal` resolves both paths (`realpath`, a system call per folder of each).
    Each system call gives up Python's lock, and behind busy worker threads getting it back
    takes a while; with a few files per conversation and tens of answers streaming at once
    this was most of the loop's own time, and its stalls were held there (`_joinrealpath`,
    `stat`, `_check_allowed`).

    Remembered here, for a file Gradio keeps in its upload folder (a path in normal form
    under it): whether it lies in a given folder, and that it may be served. Those answers
    cannot change while the app runs: Gradio names those files itself and writes them as
    plain files, never links, so resolving them again finds the same path. Only a file let
    through is remembered, with the page's blocked and allowed folders it was checked
    against; a refusal is checked again every time, and so is a file whose name starts with
    a dot (Gradio's dotfile rule depends on the working folder). Any other path (one not in
    its normal form, one outside the upload folder) is checked as before, every time. Also:
    the upload folder's own resolution is remembered for each temporary folder, and an
    uploaded file outside every static path is known not to be a static file without a
    `stat`. The checks themselves are unchanged."""
    _remember_upload_folder()
    _skip_static_check_outside_static_paths()
    _remember_folder_checks()
    _remember_allowed_files()


def _remembers(function: Any) -> bool:
    return getattr(function, "remembers", False)


def _wraps(replacement: Callable[..., Any], checked: Callable[..., Any]) -> None:
    replacement.remembers = True  # type: ignore[attr-defined]
    replacement.__wrapped__ = checked  # type: ignore[attr-defined]


def _in_upload_folder(path: str, upload_folder: str) -> bool:
    """A path in normal form under the upload folder (given with a trailing separator)."""
    return path.startswith(upload_folder) and os.path.normpath(path) == path


def _upload_folder() -> str:
    return os.path.join(os.path.abspath(gradio_utils.get_upload_folder()), "")


def kept_by_gradio(path: str) -> bool:
    """A file Gradio keeps in its upload folder, named by Gradio: a path in normal form
    under the folder, not a dotfile (whether Gradio serves one depends on the working
    folder). What Gradio answers about such a file cannot change while the app runs."""
    return (_in_upload_folder(path, _upload_folder())
            and not os.path.basename(path).startswith("."))


def _remember_upload_folder() -> None:
    """`GRADIO_TEMP_DIR` as it is now, or the `gradio` folder in the temporary folder,
    resolved once per temporary folder instead of three system calls every time."""
    if _remembers(gradio_utils.get_upload_folder):
        return
    checked = gradio_utils.get_upload_folder

    @functools.lru_cache(maxsize=8)
    def resolved(temporary_folder: str) -> str:
        return str((Path(temporary_folder) / "gradio").resolve())

    def get_upload_folder() -> str:
        return os.environ.get("GRADIO_TEMP_DIR") or resolved(tempfile.gettempdir())

    _wraps(get_upload_folder, checked)
    gradio_utils.get_upload_folder = get_upload_folder


def _skip_static_check_outside_static_paths() -> None:
    """Gradio's answer for a file is: it exists (a `stat`) and lies in a static path. For a
    file in the upload folder the second part is remembered, and where it is False so is
    the answer, whether the file exists or not: the `stat` is left out."""
    if _remembers(gradio_utils.is_static_file):
        return
    checked = gradio_utils.is_static_file

    def is_static_file(file_path: Any) -> bool:
        path = file_path.path if isinstance(file_path, FileData) else file_path
        if (isinstance(path, str) and _in_upload_folder(path, _upload_folder())
                and not any(gradio_utils.is_in_or_equal(path, static)
                            for static in _StaticFiles.all_paths)):
            return False
        return bool(checked(file_path))

    _wraps(is_static_file, checked)
    gradio_utils.is_static_file = is_static_file


def _remember_folder_checks() -> None:
    if _remembers(gradio_utils.is_in_or_equal):
        return
    checked = gradio_utils.is_in_or_equal
    upload_folder = _upload_folder()

    @functools.lru_cache(maxsize=FILE_CHECKS_REMEMBERED)
    def remembered(path_1: str, path_2: str) -> bool:
        return checked(path_1, path_2)

    def is_in_or_equal(path_1: str | Path, path_2: str | Path) -> bool:
        first, second = str(path_1), str(path_2)
        if _in_upload_folder(first, upload_folder) and os.path.isabs(second):
            return remembered(first, second)
        return checked(path_1, path_2)

    _wraps(is_in_or_equal, checked)
    gradio_utils.is_in_or_equal = is_in_or_equal


def _remember_allowed_files() -> None:
    if _remembers(processing_utils._check_allowed):
        return
    checked = processing_utils._check_allowed
    let_through: set[tuple[Any, ...]] = set()

    def _check_allowed(path: str | Path, check_in_upload_folder: bool) -> None:
        blocks = LocalContext.blocks.get(None)
        text, upload_folder = str(path), _upload_folder()
        if (blocks is None or not blocks.has_launched
                or not _in_upload_folder(text, upload_folder)
                or os.path.basename(text).startswith(".")):
            return checked(path, check_in_upload_folder)
        seen = (text, check_in_upload_folder, upload_folder,
                tuple(map(str, blocks.blocked_paths)), tuple(map(str, blocks.allowed_paths)))
        if seen not in let_through:
            checked(path, check_in_upload_folder)  # raises for a file that may not be sent
            if len(let_through) >= FILE_CHECKS_REMEMBERED:
                let_through.clear()
            let_through.add(seen)
        return None

    _wraps(_check_allowed, checked)
    processing_utils._check_allowed = _check_allowed


# ---------------------------------------------------------------- an upload Gradio has already

class _OsKeepingUploads(types.ModuleType):
    """`os` for Gradio's upload route, but for `rename` onto a file that is there."""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    @staticmethod
    def rename(source: Any, destination: Any, *args: Any, **kwargs: Any) -> None:
        try:
            kept = os.lstat(destination)
        except OSError:
            kept = None
        if (kept is not None and stat.S_ISREG(kept.st_mode) and not args and not kwargs
                and kept.st_size == os.stat(source).st_size):
            os.unlink(source)
            return
        os.rename(source, destination, *args, **kwargs)


def keep_uploads_already_there() -> None:
    """Works around: Gradio's upload route writes each uploaded file to a temporary file,
    then renames it, on the event loop, to `<upload folder>/<hash of its content>/<name>`.
    The same file sent again (a photo sent twice, an example) is renamed over the copy
    already there, and on ext4 (its default `auto_da_alloc`) a rename over a file writes the
    new file's data out first: 0.3 ms on a quiet disk, and up to a second in the 2-core
    soak, with the loop and every page waiting (`upload_fn`, `os.rename`).

    Here, when a plain file of the same size is there already, the upload's temporary file
    is removed instead: the folder is named by the hash of the content, so it holds the
    same bytes. A link, a folder, or a file of another size there is renamed over as
    Gradio does, and so is every new upload."""
    if isinstance(route_utils.os, _OsKeepingUploads):
        return
    route_utils.os = _OsKeepingUploads("os")
