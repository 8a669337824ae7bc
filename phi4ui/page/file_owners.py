"""Who may fetch which uploaded or generated file. No web framework in it.

Gradio keeps every upload and every file it serves in one folder, each in a
subfolder named by a keyed hash of its content (the key is secret to the
server). A visitor is a browser, known by a random cookie. A visitor may use
(in a message) and fetch (by URL) only the subfolders granted to it: its own
uploads, the files made for it (exports, batch results), and the public ones
(the app's example media). Everything else in that folder is refused, so a
leaked or guessed URL or path of another person's file is worthless.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path

PUBLIC = "*"
VISITOR_COOKIE = "phi4ui-visitor"
MAX_KEYS = 200_000  # forget the oldest grants beyond this, so memory stays bounded


def new_visitor() -> str:
    return secrets.token_urlsafe(24)


class FileOwners:
    """The grants: a file folder (its hash name) to the visitors who may use it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(os.path.abspath(root))
        self._owners: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def key_of(self, path: str | Path) -> str | None:
        """The folder name under the root that holds `path`, or None when `path` is not
        inside the root (then this registry has no say)."""
        absolute = Path(os.path.abspath(path))
        try:
            relative = absolute.relative_to(self.root)
        except ValueError:
            return None
        return relative.parts[0] if len(relative.parts) >= 2 else ""

    def grant(self, visitor: str, paths: Iterable[str | Path]) -> None:
        if not visitor:
            return
        with self._lock:
            for path in paths:
                key = self.key_of(path)
                if key:
                    self._owners.setdefault(key, set()).add(visitor)
            while len(self._owners) > MAX_KEYS:
                self._owners.pop(next(iter(self._owners)))

    def make_public(self, paths: Iterable[str | Path]) -> None:
        self.grant(PUBLIC, paths)

    def may_use(self, visitor: str, path: str | Path) -> bool:
        """True for a file inside the root that was granted to `visitor` (or is public).
        False for anything else, including files outside the root."""
        key = self.key_of(path)
        if not key:
            return False
        with self._lock:
            owners = self._owners.get(key, set())
            return PUBLIC in owners or (bool(visitor) and visitor in owners)

    def may_fetch(self, visitor: str, path: str | Path) -> bool:
        """Whether a request for `path` may go on to the web framework: files outside the
        root are its business (it serves only what it was told to), files inside only
        with a grant."""
        return self.key_of(path) is None or self.may_use(visitor, path)
