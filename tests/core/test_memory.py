"""Memory probes measured on real processes."""

import subprocess
import sys

from phi4ui.core.memory import children_memory, gpu_memory, process_memory


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


def test_gpu_memory_is_none_or_a_used_total_and_name():
    found = gpu_memory()
    assert found is None or (0 <= found[0] <= found[1] and found[2])
