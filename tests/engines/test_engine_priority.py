"""On the CPU the engine's processes run below the app (nice), so that the event loop that
serves every page does not wait for a CPU behind them; checked on the real tiny engine."""

from __future__ import annotations

import os
from typing import Any

import psutil
import pytest

from phi4ui.engines import vllm_compat
from phi4ui.engines.cpu_priority import ENGINE_NICE

pytestmark = pytest.mark.engine


def test_every_engine_thread_runs_below_the_app(embedded_engine: Any) -> None:
    if embedded_engine._has_gpu:
        pytest.skip("on a GPU the engine's processes keep their priority")
    processes = []
    for pid in vllm_compat.engine_pids(embedded_engine._llm):
        parent = psutil.Process(pid)
        processes += [parent, *parent.children(recursive=True)]
    threads = [thread.id for process in processes for thread in process.threads()]
    assert len(processes) >= 2 and threads  # the engine core and its worker
    assert all(os.getpriority(os.PRIO_PROCESS, tid) >= ENGINE_NICE for tid in threads)
    assert os.getpriority(os.PRIO_PROCESS, 0) < ENGINE_NICE  # the app's own stays
