"""How much memory the app, its engine processes and the GPU hold, in bytes, for the
engine's snapshots and the benchmarks."""

from __future__ import annotations

import os

import psutil


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
    total = 0
    for child in psutil.Process().children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return total
