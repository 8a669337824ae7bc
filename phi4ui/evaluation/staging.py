"""phi4ui's temporary folders: where uploads are unpacked and downloads are written.

All of them live under one root, `<system temp folder>/phi4ui-staging-<uid>/` (created
private to the user, and refused if it is anything else), one folder per job, named
`<kind>-<pid>-<process start>-<random>`: kind is `batch` (a batch upload staged for its
run), `replay` (a bundle's media, while it replays) or `export` (a bundle or batch results
offered for download).

A batch or replay removes its folder when it ends, fails or is stopped (`job_folder`).
An export cannot: Gradio copies a returned file into its own cache only after the handler
has returned. So `sweep` removes exports older than `EXPORT_KEEP_S`, and any folder whose
process has ended (the process start time in the name tells a reused pid apart). The app
sweeps when it starts and, at most once a minute, when it makes a new folder. Folders that
older versions left directly in the temp folder (`phi4ui-batch-*`, `phi4ui-replay-*`,
`phi4ui-export-*`) go too once they are older than `EXPORT_KEEP_S`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import psutil

from phi4ui.errors import SettingsError

log = logging.getLogger(__name__)
Kind = Literal["batch", "replay", "export"]
ROOT_PREFIX = "phi4ui-staging-"
EXPORT_KEEP_S = 3600.0  # long enough for any download to be copied into Gradio's cache
SWEEP_EVERY_S = 60.0
LEGACY_PREFIXES = ("phi4ui-batch-", "phi4ui-replay-", "phi4ui-export-")

_last_sweep = 0.0
_sweep_lock = threading.Lock()


def root() -> Path:
    """The user's staging root, made private on first use."""
    path = Path(tempfile.gettempdir()) / f"{ROOT_PREFIX}{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise SettingsError(f"{path} is not a private folder of this user (a link, another "
                            "user's, or open to others); remove it and try again.")
    return path


def new_folder(kind: Kind) -> Path:
    """A fresh, empty folder for one job (also sweeps leftovers, at most once a minute)."""
    _sweep_now_and_then()
    pid = os.getpid()
    return Path(tempfile.mkdtemp(prefix=f"{kind}-{pid}-{_started(pid)}-", dir=root()))


@contextlib.contextmanager
def job_folder(kind: Kind) -> Iterator[Path]:
    """A fresh folder, removed when the block ends, whether it finished, failed or was
    cancelled."""
    folder = new_folder(kind)
    try:
        yield folder
    finally:
        remove(folder)


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def sweep(*, export_keep_s: float = EXPORT_KEEP_S) -> list[Path]:
    """Removes the leftovers described in the module's docstring; returns what it removed."""
    global _last_sweep
    with _sweep_lock:
        _last_sweep = time.monotonic()
        now = time.time()
        stale = [f for f in _children(root()) if _is_stale(f, now, export_keep_s)]
        stale += [f for f in _children(Path(tempfile.gettempdir()))
                  if _is_legacy_leftover(f, now, export_keep_s)]
        for folder in stale:
            remove(folder)
    if stale:
        log.info("removed %d leftover staging folder(s)", len(stale))
    return stale


def _sweep_now_and_then() -> None:
    if time.monotonic() - _last_sweep >= SWEEP_EVERY_S:
        try:
            sweep()
        except OSError as error:  # a failed clean-up must not fail the job
            log.warning("sweeping staging folders failed: %s", error)


def _children(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []


def _is_stale(folder: Path, now: float, export_keep_s: float) -> bool:
    parts = folder.name.split("-")
    age = now - _mtime(folder)
    if len(parts) != 4 or not (parts[1].isdigit() and parts[2].isdigit()):
        return age > export_keep_s  # not one of ours: only when old
    kind, pid, started = parts[0], int(parts[1]), int(parts[2])
    if not _running(pid, started):
        return True
    return kind == "export" and age > export_keep_s


def _is_legacy_leftover(folder: Path, now: float, export_keep_s: float) -> bool:
    return (folder.name.startswith(LEGACY_PREFIXES) and _owned(folder)
            and now - _mtime(folder) > export_keep_s)


def _running(pid: int, started: int) -> bool:
    try:
        return _started(pid) == started
    except (OSError, ValueError, IndexError, psutil.Error):  # no such process
        return False


def _started(pid: int) -> int:
    """When the process started (a pid alone may be reused): in clock ticks after boot,
    which setting the wall clock does not change; without /proc, in seconds."""
    try:
        line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            raise
        return round(psutil.Process(pid).create_time())
    return int(line[line.rindex(")") + 2:].split()[19])  # field 22, after the name


def _mtime(folder: Path) -> float:
    try:
        return folder.stat().st_mtime
    except OSError:
        return 0.0


def _owned(folder: Path) -> bool:
    try:
        return folder.lstat().st_uid == os.getuid()
    except OSError:
        return False
