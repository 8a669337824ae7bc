"""Memory probes measured on real processes."""

import subprocess
import sys

from phi4ui.core.memory import children_memory, gpu_memory, process_memory, tree_memory


def test_process_memory_is_this_process_resident_size():
    held = bytearray(64 * 2**20)
    held[::4096] = b"x" * len(held[::4096])  # touch every page so that it is resident
    assert process_memory() > len(held)


def test_children_memory_counts_a_running_child_process():
    alone = children_memory()
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        assert children_memory() > alone
        assert process_memory(child.pid) > 0
    finally:
        child.communicate(b"")


def test_tree_memory_counts_a_process_and_its_children_that_another_started():
    # A parent holding 64 MiB, and its own child: as a shared engine core and its worker.
    # The parent tells the child's pid only once the child has started and waits.
    script = ("import subprocess, sys; held = b'x' * 64 * 2**20; "
              "child = subprocess.Popen([sys.executable, '-c', "
              "'import sys; print(1, flush=True); sys.stdin.read()'], "
              "stdin=subprocess.PIPE, stdout=subprocess.PIPE); child.stdout.readline(); "
              "print(child.pid, flush=True); sys.stdin.read(); child.communicate(b'')")
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(parent.stdout.readline())
        # Each on its own first: a process only grows while it waits, so the sum read
        # afterwards is at least this.
        each = process_memory(parent.pid) + process_memory(grandchild)
        whole = tree_memory((parent.pid,))
        assert whole > 64 * 2**20
        assert whole >= each
        assert tree_memory(()) == 0 and tree_memory((2**22 + 1,)) == 0  # none; one gone
    finally:
        parent.communicate("")


def test_gpu_memory_is_none_or_a_used_total_and_name():
    found = gpu_memory()
    assert found is None or (0 <= found[0] <= found[1] and found[2])


def test_memory_readings_are_taken_again_only_once_stale(monkeypatch):
    """Every answer's record reads the memory on the event loop: within `fresh_s` the
    last reading is given again, and after it a new one is taken."""
    from phi4ui.core import memory

    scans = []
    monkeypatch.setattr(memory, "children_memory", lambda: scans.append(1) or 100 * len(scans))
    monkeypatch.setattr(memory, "process_memory", lambda: 7)
    now = [0.0]
    readings = memory.MemoryReadings(fresh_s=1.0, clock=lambda: now[0])
    assert readings.read(False) == (100, None, "CPU, engine processes", 7)
    now[0] = 0.9
    assert readings.read(False)[0] == 100 and len(scans) == 1
    now[0] = 1.0
    assert readings.read(False)[0] == 200 and len(scans) == 2


def test_memory_readings_fall_back_to_the_engine_processes_without_a_gpu(monkeypatch):
    from phi4ui.core import memory

    monkeypatch.setattr(memory, "gpu_memory", lambda: None)
    monkeypatch.setattr(memory, "children_memory", lambda: 5)
    monkeypatch.setattr(memory, "process_memory", lambda: 7)
    readings = memory.MemoryReadings()
    assert readings.read(True) == (5, None, "CPU, engine processes", 7)
    monkeypatch.setattr(memory, "gpu_memory", lambda: (1, 2, "H200"))
    assert readings.read(True) == (5, None, "CPU, engine processes", 7)  # still fresh
    assert memory.MemoryReadings().read(True) == (1, 2, "H200", 7)
