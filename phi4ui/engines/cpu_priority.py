"""The engine's processes below the app on the CPU, where vLLM runs on the CPU."""

from __future__ import annotations

import contextlib
import os

# How much lower the engine's processes run on the CPU than the app (Linux nice), when vLLM
# runs on the CPU: there the engine would take every core, and the event loop that serves
# all pages waited for a CPU behind it (in the 2-core soak, about half of the loop's stall
# time). The engine still gets every cycle the app leaves, so it slows only while the app
# has pages to serve. On a GPU the engine's processes mostly wait for the GPU and are left
# as they are.
ENGINE_NICE = 10


def lower_priority(pids: list[int], nice: int) -> None:
    """Every thread of these processes and of their descendants runs at `nice` (or lower,
    if it already did); threads they start later inherit it from their parent thread."""
    import psutil

    processes = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(pid)
            processes += [parent, *parent.children(recursive=True)]
    for process in processes:
        with contextlib.suppress(psutil.Error):
            for thread in process.threads():
                with contextlib.suppress(OSError):
                    current = os.getpriority(os.PRIO_PROCESS, thread.id)
                    os.setpriority(os.PRIO_PROCESS, thread.id, max(current, nice))
