"""Keeps vLLM's engine core on CPUs of its own while a benchmark runs: a test of whether
the page and client processes that wake at every token slow the engine by sharing its CPUs.

    python3 -m bench.gpu.pin_engine plan 2        # e.g. "ENGINE=0,1 REST=2,3,...,15"
    python3 -m bench.gpu.pin_engine watch 0,1 LOG
                                                  # pins every engine process and its threads

Run the benchmark itself under `taskset -c REST`, so that everything else stays off the
engine's CPUs; the watcher moves each engine process (by vLLM's process title) and every
thread it has, as they appear, onto the engine's CPUs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil

ENGINE_TITLES = ("EngineCore", "VLLM::Worker")
EVERY_S = 0.2


def physical_cores() -> list[list[int]]:
    """The CPUs of each physical core, the siblings of a core together."""
    seen: dict[str, list[int]] = {}
    for cpu in sorted(os.sched_getaffinity(0)):
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        key = siblings.read_text().strip() if siblings.exists() else str(cpu)
        seen.setdefault(key, []).append(cpu)
    return list(seen.values())


def plan(engine_cores: int) -> str:
    cores = physical_cores()
    engine = [cpu for core in cores[:engine_cores] for cpu in core]
    rest = [cpu for core in cores[engine_cores:] for cpu in core]
    return f"ENGINE={','.join(map(str, engine))} REST={','.join(map(str, rest))}"


def _is_engine(process: psutil.Process) -> bool:
    try:
        title = process.name() + " " + " ".join(process.cmdline())
    except psutil.Error:
        return False
    return any(name in title for name in ENGINE_TITLES)


def watch(engine_cpus: set[int], log_path: Path) -> None:
    pinned: set[tuple[int, int]] = set()
    with log_path.open("a") as log:
        while True:
            for process in psutil.process_iter():
                if process.pid == os.getpid() or not _is_engine(process):
                    continue
                for thread in _threads(process.pid):
                    if (process.pid, thread) in pinned:
                        continue
                    try:
                        os.sched_setaffinity(thread, engine_cpus)
                    except OSError:
                        continue
                    if not any(pid == process.pid for pid, _ in pinned):
                        print(f"{time.time():.1f} pinned {process.pid} {process.name()}"
                              f" to {sorted(engine_cpus)}", file=log, flush=True)
                    pinned.add((process.pid, thread))
            time.sleep(EVERY_S)


def _threads(pid: int) -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def main() -> None:
    if sys.argv[1] == "plan":
        print(plan(int(sys.argv[2])))
    else:
        watch({int(cpu) for cpu in sys.argv[2].split(",")}, Path(sys.argv[3]))


if __name__ == "__main__":
    main()
