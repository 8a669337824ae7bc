"""Starting a server process, waiting for its health check and stopping its whole group,
as the benchmarks and the tests that start the app or vLLM do, on real processes."""

import subprocess
import sys
import time

import psutil
import pytest

from bench.procs import (
    NotReady,
    answers_ok,
    free_port,
    profile_tables,
    profiling,
    start_in_group,
    stop_group,
    wait_until_ready,
)


def test_a_free_port_takes_a_server(tmp_path):
    port = free_port()
    server = start_in_group([sys.executable, "-m", "http.server", str(port), "--bind",
                             "127.0.0.1", "--directory", str(tmp_path)], tmp_path / "server.log")
    try:
        wait_until_ready(server, lambda: answers_ok(f"http://127.0.0.1:{port}/"),
                         name="http.server", timeout_s=30, log=lambda: "", every_s=0.1)
        assert server.poll() is None
    finally:
        stop_group(server)
    assert server.returncode is not None
    assert not answers_ok(f"http://127.0.0.1:{port}/")


def test_a_process_that_exits_before_it_is_ready_is_told_with_its_log(tmp_path):
    log = tmp_path / "dying.log"
    dying = start_in_group([sys.executable, "-c", "print('no model here'); raise SystemExit(3)"],
                           log)
    with pytest.raises(NotReady, match=r"(?s)dying exited with 3:\n.*no model here"):
        wait_until_ready(dying, lambda: False, name="dying", timeout_s=30,
                         log=lambda: log.read_text(), every_s=0.05)


def test_a_health_check_that_never_passes_times_out(tmp_path):
    sleeper = start_in_group([sys.executable, "-c", "import time; time.sleep(60)"],
                             tmp_path / "sleeper.log")
    try:
        started = time.monotonic()
        with pytest.raises(NotReady, match=r"sleeper was not ready in 0\.3 s"):
            wait_until_ready(sleeper, lambda: False, name="sleeper", timeout_s=0.3,
                             log=lambda: "", every_s=0.05)
        assert time.monotonic() - started < 5
    finally:
        stop_group(sleeper)


def test_stopping_the_group_stops_the_processes_it_started(tmp_path):
    spawn = ("import subprocess, sys, time; "
             "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
             "print(child.pid, flush=True); time.sleep(60)")
    log = tmp_path / "parent.log"
    parent = start_in_group([sys.executable, "-c", spawn], log)
    wait_until_ready(parent, lambda: log.read_text().strip() != "", name="parent",
                     timeout_s=30, log=lambda: "", every_s=0.05)
    child = psutil.Process(int(log.read_text()))
    stop_group(parent, grace_s=10)
    child.wait(10)  # raises psutil.TimeoutExpired if the child outlived its group
    assert not child.is_running()


def test_a_profile_of_a_process_tree_has_a_table_per_kind_of_process(tmp_path):
    for name in ("spin_one.py", "spin_two.py"):
        (tmp_path / name).write_text("import time\nend = time.time() + 4\n"
                                     "while time.time() < end:\n    pass\n")
    parent = subprocess.Popen(["bash", "-c", f"{sys.executable} spin_one.py & "
                               f"{sys.executable} spin_two.py; wait"], cwd=tmp_path)
    try:
        time.sleep(0.5)
        with profiling(parent.pid, tmp_path, "tree", with_children=True):
            time.sleep(1.5)
    finally:
        parent.wait(10)
    tables = (tmp_path / "tree-profile.txt").read_text()
    assert tables.count("## ") == 2, tables
    assert "spin_one.py\n" in tables and "spin_two.py\n" in tables
    assert "<module> (spin_one.py:3)" in tables


def test_a_profile_with_names_that_are_not_utf_8_is_still_summed_up(tmp_path):
    # py-spy writes a process's names as it has them (a GPU run's had a byte 0xff).
    collapsed = tmp_path / "app-profile.collapsed"
    collapsed.write_bytes(b'process 7:"python -m phi4ui serve";run (loop.py:1);'
                          b'send (w\xffb.py:2) 3\n')
    tables = profile_tables(collapsed, by_process=True)
    assert "python -m phi4ui serve" in tables and "3 samples" in tables
