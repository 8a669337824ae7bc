"""Where a scenario's CPU went, across the whole machine: how many of its cores were busy,
and how many cores each kind of process used (the engine's core, vLLM's API processes,
the raw path's own process, phi4ui's page processes, the load balancer, the clients,
everything else).

Whether a path is held back by the machine's CPU is a claim the tokens per second cannot
make alone: a front end at one core of sixteen and a machine at sixteen of sixteen call
for different fixes. Two snapshots, one before a scenario's people start and one after
they are done, read from /proc by psutil (tens of milliseconds on a busy machine).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

KINDS = ("engine core", "engine workers", "vLLM API", "raw caller", "page", "load balancer",
         "clients", "other")


@dataclass
class Snapshot:
    wall: float
    busy_s: float  # every core's non-idle time since boot, steal excluded
    steal_s: float
    per_process: dict[int, tuple[str, float]] = field(default_factory=dict)  # pid: (kind, s)


def snapshot(client_parent: int | None = None) -> Snapshot:
    """The machine's CPU time so far, and each process's, with its kind. `client_parent`
    is the process whose children are the simulated people, if they run apart."""
    times = psutil.cpu_times()
    steal = float(getattr(times, "steal", 0.0))
    idle = float(times.idle) + float(getattr(times, "iowait", 0.0))
    # Linux counts a guest's time in user and nice as well: not twice here.
    guest = float(getattr(times, "guest", 0.0)) + float(getattr(times, "guest_nice", 0.0))
    return Snapshot(time.perf_counter(), float(sum(times)) - idle - steal - guest, steal,
                    process_times(lambda pid, info: kind_of(info, client_parent)))


def process_times(kind: Callable[[int, dict[str, Any]], str]) -> dict[int, tuple[str, float]]:
    """Every process's kind, as `kind` tells it from its pid and psutil's info (name,
    cmdline, ppid), and its CPU seconds so far."""
    taken: dict[int, tuple[str, float]] = {}
    for process in psutil.process_iter(["name", "cmdline", "ppid", "cpu_times"]):
        info = process.info
        if info["cpu_times"] is None:
            continue
        taken[process.pid] = (kind(process.pid, info),
                              float(info["cpu_times"].user + info["cpu_times"].system))
    return taken


def seconds_by_kind(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                    kinds: tuple[str, ...]) -> dict[str, float]:
    """CPU seconds of each kind between two `process_times`, of the processes alive at
    both."""
    by_kind = dict.fromkeys(kinds, 0.0)
    for pid, (kind, spent) in after.items():
        if pid in before:
            by_kind[kind] += max(spent - before[pid][1], 0.0)
    return by_kind


def kind_of(info: dict[str, Any], client_parent: int | None = None) -> str:
    """Which of KINDS a process is, from its name (vLLM names its processes) and command."""
    name = info.get("name") or ""
    command = " ".join(info.get("cmdline") or [])
    if (client_parent is not None and info.get("ppid") == client_parent) or (
            "bench.clients" in command):
        return "clients"
    if "EngineCore" in name or "EngineCore" in command:
        return "engine core"
    if "Worker" in name and "VLLM" in name:
        return "engine workers"
    if "bench.raw" in command:  # the raw path: AsyncLLM's front half and its callers
        return "raw caller"
    if "haproxy" in name:
        return "load balancer"
    if "APIServer" in name or "ApiServer" in name or (
            "vllm" in command and ("serve" in command or "api_server" in command)):
        return "vLLM API"
    if "phi4ui" in command or "app.py" in command:
        return "page"
    return "other"


def usage(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """Cores in use between two snapshots: the machine's busy cores (and the host's steal),
    and the cores each kind of process used, its processes counted only if alive at both."""
    wall = max(after.wall - before.wall, 1e-9)
    by_kind = {kind: seconds / wall for kind, seconds in
               seconds_by_kind(before.per_process, after.per_process, KINDS).items()}
    return {"cores": psutil.cpu_count(), "wall_s": round(wall, 3),
            "busy_cores": round((after.busy_s - before.busy_s) / wall, 2),
            "steal_cores": round((after.steal_s - before.steal_s) / wall, 2),
            "by_kind": {kind: round(cores, 2) for kind, cores in by_kind.items() if cores}}
