"""The scheduler trace's reading: who ran on each CPU while an app thread waited for one.
The lines are ftrace's own format (`sched_switch`, `sched_wakeup`); recording needs root
and tracefs, so it is not part of the suite."""

from __future__ import annotations

from pathlib import Path

from bench.sched_trace import waits

THREADS = """saved at monotonic 20.000000: the buffer at the end
    TID     PID  NI COMMAND         COMMAND
    100     100   0 python          .venv/bin/python app.py --port 7860
    200     200  10 VLLM::EngineCor VLLM::EngineCore
    300     300   0 python          .venv/bin/python -m bench.soak_people job.json out.json
"""


def _switch(cpu: int, at: float, prev: tuple[str, int, int, str], nxt: tuple[str, int, int]) -> str:
    return (f"  {prev[0]}-{prev[1]} [{cpu:03d}] d..2. {at:.6f}: sched_switch: prev_comm={prev[0]} "
            f"prev_pid={prev[1]} prev_prio={prev[2]} prev_state={prev[3]} ==> "
            f"next_comm={nxt[0]} next_pid={nxt[1]} next_prio={nxt[2]}")


def _wakeup(cpu: int, at: float, comm: str, tid: int) -> str:
    return (f"  {comm}-{tid} [{cpu:03d}] dN.3. {at:.6f}: sched_wakeup: comm={comm} pid={tid} "
            f"prio=120 target_cpu={cpu:03d}")


def test_a_wait_for_a_cpu_names_what_ran_meanwhile(tmp_path: Path) -> None:
    trace = "\n".join([
        "# tracer: nop",
        _switch(0, 10.000, ("swapper/0", 0, 120, "R"), ("VLLM::EngineCor", 200, 130)),
        _switch(1, 10.000, ("swapper/1", 0, 120, "R"), ("python", 300, 120)),
        _wakeup(0, 10.010, "python", 100),  # the app's thread is ready at 10.010 ...
        _switch(1, 10.060, ("python", 300, 120, "S"), ("python", 100, 120)),  # ... runs at 10.060
        _switch(0, 10.100, ("VLLM::EngineCor", 200, 130, "R"), ("swapper/0", 0, 120)),
        _switch(1, 10.100, ("python", 100, 120, "S"), ("swapper/1", 0, 120)),
        _wakeup(1, 10.200, "python", 100),  # a short wait: under the threshold
        _switch(1, 10.201, ("swapper/1", 0, 120, "R"), ("python", 100, 120)),
    ])
    (tmp_path / "trace.txt").write_text(trace + "\n")
    (tmp_path / "threads.txt").write_text(THREADS)
    found = waits(tmp_path / "trace.txt", tmp_path / "threads.txt", min_ms=20)
    assert "waited for a CPU 20 ms or longer 1 times" in found
    assert "app:100[100] waited 50.0 ms from monotonic 10.010" in found
    assert "cpu0: engine:VLLM::EngineCor[200] (prio 130) 50.0 ms" in found
    assert "cpu1: people:python[300] (prio 120) 50.0 ms" in found
