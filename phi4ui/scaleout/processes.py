"""The processes of a scaled-out deployment: each started in a process group of its own
(vLLM's server spawns API and engine processes), stopped by that group."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


@dataclass
class Child:
    name: str
    command: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    nice: int = 0  # above 0: below the other processes on the CPU, with all it starts
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log.info("starting %s", self.name)
        # Output goes where the app's goes (a terminal, a container's log).
        self.process = subprocess.Popen(list(self.command), env={**os.environ, **self.env},
                                        start_new_session=True,
                                        preexec_fn=functools.partial(_prepare, self.nice))

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    def exit_code(self) -> int | None:
        """None while it runs."""
        return None if self.process is None else self.process.poll()

    def signal(self, number: int) -> None:
        if self.process is not None and self.exit_code() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, number)

    def stop(self, grace_s: float) -> None:
        """SIGTERM to the group; SIGKILL after `grace_s` if it has not ended."""
        if self.process is None:
            return
        self.signal(signal.SIGTERM)
        ended = wait_all([self], grace_s)
        if not ended:
            log.warning("%s did not stop within %.0f s; killing it", self.name, grace_s)
            self.signal(signal.SIGKILL)
            self.process.wait()
        # Its spawned processes share the group and may outlive it.
        with_group_gone(self.pid)


def wait_all(children: Sequence[Child], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(child.exit_code() is not None for child in children):
            return True
        time.sleep(0.1)
    return all(child.exit_code() is not None for child in children)


def with_group_gone(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


def _prepare(nice: int) -> None:
    """In the child, before it runs (in its own new session)."""
    _end_with_parent()
    if nice > 0:
        lower_own_priority(nice)


def lower_own_priority(nice: int) -> None:
    """Where the kernel groups processes by session (autogroup), a process's nice only ranks
    it within its session, and a new session competes with every other as an equal: the
    session's nice is set as well. Processes it starts inherit both."""
    lower_session_priority(nice)
    os.nice(nice)


def lower_session_priority(nice: int) -> None:
    """The nice of this process's session as one group (autogroup), where the kernel has it."""
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(nice))


def _end_with_parent() -> None:
    """In the child, before it runs: SIGTERM when the process that started it ends, however
    it ends (killed included), so that no server is left running without its supervisor."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
