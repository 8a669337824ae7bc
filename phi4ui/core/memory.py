"""How much memory the app, its engine processes and the GPU hold, in bytes, for the
engine's snapshots and the benchmarks."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psutil

# How long a memory reading for an answer's record stays current, in seconds.
MEMORY_FRESH_S = 1.0


def process_memory(pid: int | None = None) -> int:
    """Resident memory of a process (this one by default), in bytes."""
    return psutil.Process(pid or os.getpid()).memory_info().rss


def gpu_memory(index: int = 0) -> tuple[int, int, str] | None:
    """(used, total, name) of a GPU through NVML, which sees every process on the card;
    None without an NVIDIA driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        info = pynvml.nvmlDeviceGetMemoryInfo(handle)
        name = pynvml.nvmlDeviceGetName(handle)
    except Exception:  # noqa: BLE001 - no driver, no library or no device: all mean "no GPU"
        return None
    return int(info.used), int(info.total), name if isinstance(name, str) else name.decode()


def children_memory() -> int:
    """Resident memory of this process's children (vLLM's engine processes), in bytes."""
    return _resident(psutil.Process().children(recursive=True))


def tree_memory(pids: tuple[int, ...]) -> int:
    """Resident memory of these processes and their children, in bytes: an engine that
    another process started (a shared engine core)."""
    processes = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            processes += [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
    return _resident(processes)


def _resident(processes: list[psutil.Process]) -> int:
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:  # it ended meanwhile
            continue
    return total


# (used, total or None, name) of the engine's device memory, and this process's resident memory.
Reading = tuple[int, int | None, str, int]


class MemoryReadings:
    """The engine's memory and this process's, read at most once every `fresh_s` and the
    same figures given in between. Every answer's record takes a reading on the event
    loop, and each is an NVML call or, on the CPU, a scan of every process in /proc (the
    engine's processes are this one's children): hundreds of system calls that each give
    up Python's lock, at every answer's end."""

    def __init__(self, fresh_s: float = MEMORY_FRESH_S,
                 clock: Callable[[], float] = time.monotonic,
                 engine_pids: tuple[int, ...] = ()) -> None:
        self.fresh_s = fresh_s
        self._engine_pids = engine_pids  # an engine not among this process's children
        self._clock = clock
        self._last: tuple[float, bool, Reading] | None = None

    def read(self, has_gpu: bool) -> Reading:
        now = self._clock()
        if self._last is not None:
            taken_at, for_gpu, reading = self._last
            if for_gpu == has_gpu and now - taken_at < self.fresh_s:
                return reading
        gpu = gpu_memory() if has_gpu else None
        device: tuple[int, int | None, str] = (
            gpu if gpu is not None else (self._engine_memory(), None, "CPU, engine processes"))
        reading = (*device, process_memory())
        self._last = (now, has_gpu, reading)
        return reading

    def _engine_memory(self) -> int:
        return tree_memory(self._engine_pids) if self._engine_pids else children_memory()
