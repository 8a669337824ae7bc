"""Whose CPU a browser round used: on a machine where the browser, the pages, the vLLM
server and its engine share a few cores, any of them can slow the others' tokens, so a
page that arrives later may do so because of its own work or because of someone else's.

Two snapshots of every process's CPU time, one just before the keypress and one once the
server has finished the answer, grouped by what each process is for this round.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from bench.machine_cpu import process_times, seconds_by_kind

GROUPS = ("browser", "this page", "other pages", "vLLM server", "engine core", "benchmark",
          "other")


def snapshot(page_pids: Mapping[str, int], measured: str) -> dict[int, tuple[str, float]]:
    """Each process's group and CPU seconds so far; `page_pids` maps each page's name to
    its server process, `measured` is the page of this round."""
    own = os.getpid()
    return process_times(lambda pid, info: _group(pid, info, own, page_pids, measured))


def used(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
         ) -> dict[str, float]:
    """CPU seconds per group between two snapshots, of the processes alive at both."""
    return {group: round(seconds, 3)
            for group, seconds in seconds_by_kind(before, after, GROUPS).items()}


def _group(pid: int, info: dict[str, Any], own: int, page_pids: Mapping[str, int],
           measured: str) -> str:
    name = str(info.get("name") or "")
    command = " ".join(info.get("cmdline") or [])
    for page, page_pid in page_pids.items():
        if pid == page_pid:
            return "this page" if page == measured else "other pages"
    if "chrom" in name.lower() or "/chromium" in command:
        return "browser"
    if pid == own or info.get("ppid") == own:  # this process and Playwright's driver
        return "benchmark"
    if "EngineCore" in name or "EngineCore" in command:
        return "engine core"
    if "vllm" in command.lower() or "APIServer" in name:
        return "vLLM server"
    return "other"
