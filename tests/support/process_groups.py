"""The processes a test started in a group of their own (`start_new_session`), and the
shared memory (`/dev/shm`) they map. vLLM's engine processes make segments of hundreds of
MB there; a process killed as a crash would be cannot remove its own, so a test that kills
one removes them once the whole group is gone."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import psutil

from phi4ui.engines.vllm_compat import mapped_shared_memory


def group_pids(leader: int) -> list[int]:
    """The live processes of the group `leader` started."""
    pids = []
    for pid in psutil.pids():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(pid) == leader and psutil.Process(pid).status() != "zombie":
                pids.append(pid)
    return pids


def shared_memory_of(leader: int) -> set[Path]:
    """The files under /dev/shm that the group's processes map now."""
    files: set[Path] = set()
    for pid in group_pids(leader):
        files |= mapped_shared_memory(str(pid))
    return files


def remove_when_gone(leader: int, shared: set[Path], seconds: float = 15.0) -> None:
    """Waits for the group's processes to end, then removes the shared memory they left."""
    deadline = time.monotonic() + seconds
    while group_pids(leader) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not group_pids(leader):
        for path in shared:
            path.unlink(missing_ok=True)
