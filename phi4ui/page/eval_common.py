"""What the evaluation tabs share: named event outputs, the texts and slider limits they
have in common, reading the browser's field values, and the export of a bundle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from html import escape as escape_html
from pathlib import Path
from typing import Any

import gradio as gr

from phi4ui.core.generation_settings import MIN_NEW_TOKENS
from phi4ui.errors import Phi4UIError
from phi4ui.evaluation import bundle, staging
from phi4ui.evaluation.store import Store
from phi4ui.page.files import PageFiles

DEFAULT_TAGS = ["wrong", "unsafe", "slow", "incomplete", "great"]
RECORDING_OFF = ("Recording is off (`--record false`), so answers cannot be rated, exported "
                 "or reviewed here.")
# The evaluation tabs ask for short answers; the engine still refuses more than it can hold.
MAX_NEW_TOKENS_RANGE = (MIN_NEW_TOKENS, 4096)
DEFAULT_MAX_NEW_TOKENS = 256


class Outputs:
    """An event's outputs by name, in the order they are wired. A handler names the values
    it changes; the others are left as they are (`gr.skip()`). The names are those of the
    tab's components dataclass, so the wiring and the handlers cannot disagree on the order."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def components(self, parts: object) -> list[Any]:
        return [getattr(parts, name) for name in self.names]

    def __call__(self, **values: Any) -> Any:
        """The update for Gradio: a tuple, or the value itself for a single output."""
        unknown = sorted(set(values) - set(self.names))
        if unknown:
            raise TypeError(f"{', '.join(unknown)}: not outputs of this event {self.names}")
        update = tuple(values.get(name, gr.skip()) for name in self.names)
        return update[0] if len(update) == 1 else update


def bind(handler: Callable[..., Awaitable[Any]], **fixed: Any) -> Callable[..., Awaitable[Any]]:
    """`handler` with some keyword arguments fixed, still a coroutine function to Gradio."""
    async def bound(*inputs: Any) -> Any:
        return await handler(*inputs, **fixed)

    return bound


def text_of(value: Any) -> str:
    """A text field's value as the browser sent it: text, or nothing."""
    return value if isinstance(value, str) else ""


def split_tags(chosen: Any, more: Any) -> list[str]:
    """The tags ticked in the checkbox group and those typed, comma-separated, beside it."""
    picked = [tag for tag in chosen if isinstance(tag, str)] \
        if isinstance(chosen, list | tuple) else []
    return [*picked, *text_of(more).split(",")]


def tag_fields(tags: Sequence[str]) -> tuple[list[str], str]:
    """`tags` as the two fields show them: the known ones ticked, the others typed."""
    return ([t for t in tags if t in DEFAULT_TAGS],
            ", ".join(t for t in tags if t not in DEFAULT_TAGS))


def printable(text: str) -> str:
    """`text` with anything that cannot be encoded (a lone surrogate) made printable: the
    page could not send it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def internal(error: BaseException) -> str:
    return printable(f"Internal error ({type(error).__name__}: {error}); see the app's log.")


def warn(error: Phi4UIError) -> None:
    """A toast with the error's text (toasts show HTML)."""
    gr.Warning(escape_html(str(error)))


def export_folder() -> Path:
    # Under the system temp folder, which Gradio serves downloads from. Gradio copies the
    # file after the handler returns, so the folder is left to `staging.sweep`.
    return staging.new_folder("export")


async def export_download(store: Store, ids: list[str], kind: str, detail: str,
                          files: PageFiles, request: gr.Request) -> Any:
    """A reproducibility bundle of the answers `ids`, as the download button's new state;
    only the visitor who asked for it may fetch it."""
    name = time.strftime(f"phi4ui-{kind}-%Y%m%d-%H%M%S.zip")
    try:
        path = await asyncio.to_thread(bundle.export_bundle, store, ids,
                                       export_folder() / name)
        await asyncio.to_thread(files.grant, request, [path])
    except Phi4UIError as error:
        warn(error)
        return gr.DownloadButton(visible=False)
    return gr.DownloadButton(f"Download {name}{detail}", value=str(path), visible=True)


def shows_everyones_records(store: Store | None, everyone_may_review: bool, needs_login: str,
                            elem_id: str) -> bool:
    """For a tab that lists every visitor's recorded answers (Review, Runs): True when it
    may be built; otherwise it says why not (recording off, or a public address without a
    login) and stays empty. Call inside the tab."""
    if store is None:
        gr.Markdown(RECORDING_OFF)
        return False
    if not everyone_may_review:
        gr.Markdown(needs_login, elem_id=elem_id)
        return False
    return True
