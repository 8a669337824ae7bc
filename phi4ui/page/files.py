"""The page's side of `file_access`: who the visitor of an event is, which files it may
use, and granting it the files made for it (Gradio serves a returned file from a copy
named by a keyed hash of its content, under its upload folder)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import gradio as gr
from gradio import processing_utils
from gradio.utils import get_upload_folder
from gradio_client import utils as client_utils

from phi4ui.page.file_owners import VISITOR_COOKIE, FileOwners


def upload_root() -> Path:
    return Path(get_upload_folder())


def visitor_of(request: gr.Request | None) -> str:
    if request is None:
        return ""
    try:
        return str(request.cookies.get(VISITOR_COOKIE) or "")
    except AttributeError:  # a request without cookies (a direct call)
        return ""


def login_of(request: gr.Request | None) -> str:
    """The login name of whoever sent the event; '' without a login."""
    username = getattr(request, "username", None) if request is not None else None
    return username if isinstance(username, str) else ""


def served_path(path: str | Path) -> Path:
    """Where Gradio will serve a file this app returns."""
    name = client_utils.strip_invalid_filename_characters(Path(path).name)
    return upload_root() / processing_utils.hash_file(path) / name


class PageFiles:
    def __init__(self, owners: FileOwners) -> None:
        self.owners = owners

    def checker(self, request: gr.Request | None) -> Callable[[str], bool]:
        visitor = visitor_of(request)
        return lambda path: self.owners.may_use(visitor, path)

    def grant(self, request: gr.Request | None, paths: Iterable[str | Path]) -> None:
        """Lets the visitor fetch files the app made for it (exports, results)."""
        self.owners.grant(visitor_of(request), [served_path(p) for p in paths])

    def make_public(self, paths: Iterable[str | Path]) -> None:
        """The app's own example media, which every visitor may see and send."""
        self.owners.make_public([served_path(p) for p in paths])
