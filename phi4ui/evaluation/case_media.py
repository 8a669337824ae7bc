"""Finding a case's image and audio files: beside the case file for the command line,
only among the uploaded files for the page (see `phi4ui.evaluation.cases`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from phi4ui.core.media import kind_of


@dataclass(frozen=True)
class MediaFinder:
    """Where a case's media paths lead, or a ValueError saying why not."""

    base: Path  # the case file's folder
    loose_media: bool
    confine_to: Path | None

    def find(self, given: str, kind: str, suffixes: Iterable[str]) -> str:
        found = self._confined(given, kind) if self.confine_to else self._local(given, kind)
        if kind_of(found) != kind:
            raise ValueError(f"'{shown(given)}' is not an {kind} file (expected one of "
                             f"{', '.join(sorted(suffixes))})")
        return str(found)

    def _local(self, given: str, kind: str) -> Path:
        path = Path(given).expanduser()
        candidates = [path] if path.is_absolute() else [self.base / path]
        if self.loose_media and not path.is_absolute():
            candidates.append(self.base / path.name)
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise ValueError(f"{kind} file '{given}' not found (looked at {candidates[0]})")
        return found.resolve()

    def _confined(self, given: str, kind: str) -> Path:
        """Only files inside `confine_to`; whether anything exists outside it is never
        looked at, so the message cannot tell."""
        assert self.confine_to is not None
        folder = self.confine_to.resolve()
        path = Path(given)
        candidates = [] if path.is_absolute() else [self.base / path]
        if self.loose_media and candidates:
            candidates.append(self.base / path.name)
        for candidate in candidates:
            found = resolved(candidate)
            if found is None or not found.is_relative_to(folder):
                break  # a path that leads out is refused, not looked up by its name
            if found.is_file():
                return found
        raise ValueError(f"{kind} '{shown(given)}' is not among the uploaded files; name "
                         "files relative to the case file and upload them with it")


def resolved(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, ValueError, RuntimeError):  # a NUL in the name, a link loop
        return None


def shown(given: str) -> str:
    return given if len(given) <= 80 else given[:79] + "…"
