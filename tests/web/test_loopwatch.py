"""The event-loop stall probe that /healthz reports."""

import asyncio
import gc
import linecache
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from phi4ui.web.loopwatch import LoopWatch


def test_a_blocking_call_on_the_loop_shows_as_a_stall_of_about_its_length():
    async def scenario() -> LoopWatch:
        watch = LoopWatch(interval_s=0.01)
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(0.05)
        time.sleep(0.2)  # holds the loop, as a blocking call in a handler would
        await asyncio.sleep(0.05)
        task.cancel()
        return watch

    watch = asyncio.run(scenario())
    figures = watch.figures()
    assert 180 <= figures["loop_stall_max_ms"] <= 300
    assert figures["loop_stall_recent_ms"] == figures["loop_stall_max_ms"]
    assert watch.wakeups >= 5


def test_an_idle_loop_shows_no_stall():
    async def scenario() -> LoopWatch:
        watch = LoopWatch(interval_s=0.01)
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(0.2)
        task.cancel()
        return watch

    assert asyncio.run(scenario()).figures()["loop_stall_max_ms"] < 100


def test_recent_forgets_what_is_older_than_twenty_seconds(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    watch = LoopWatch()
    watch.observe(0.5)
    clock[0] += 21
    watch.observe(0.002)
    figures = watch.figures()
    assert (figures["loop_stall_max_ms"], figures["loop_stall_recent_ms"]) == (500.0, 2.0)


def hold_the_loop_in_a_named_function() -> None:
    time.sleep(0.4)


def watched(hold: Callable[[], None], report_stalls: bool = True) -> LoopWatch:
    """A watch of a loop held once by `hold`."""
    async def scenario() -> LoopWatch:
        watch = LoopWatch(interval_s=0.01, report_stalls=report_stalls)
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(0.05)
        hold()
        await asyncio.sleep(0.05)
        task.cancel()
        return watch

    return asyncio.run(scenario())


def logged_stall(caplog: Any, hold: Callable[[], None]) -> Any:
    """The one log record of a watched loop held once by `hold`."""
    with caplog.at_level(logging.WARNING, logger="phi4ui.web.loopwatch"):
        watched(hold)
    [record] = caplog.records
    return record


def test_a_long_stall_is_logged_with_where_the_loop_was_held(caplog):
    record = logged_stall(caplog, hold_the_loop_in_a_named_function)
    held_ms = re.match(r"The event loop was held for (\d+) ms, in:\n", record.getMessage())
    assert held_ms and 300 <= int(held_ms[1]) <= 600, record.getMessage()
    assert "hold_the_loop_in_a_named_function" in record.getMessage()
    assert "time.sleep(0.4)" in record.getMessage()


def test_a_logged_stall_keeps_no_source_file_in_memory(caplog):
    # `traceback`'s formatting keeps each file on the stack in `linecache` for good: in the
    # soak, five files' lines, thousands of strings that every full collection walked.
    linecache.clearcache()
    record = logged_stall(caplog, hold_the_loop_in_a_named_function)
    assert "time.sleep(0.4)" in record.getMessage()
    assert __file__ not in linecache.cache and asyncio.events.__file__ not in linecache.cache


def test_short_stalls_are_not_logged(caplog):
    async def scenario() -> None:
        watch = LoopWatch(interval_s=0.01)
        task = asyncio.create_task(watch.run())
        for _ in range(5):
            time.sleep(0.03)
            await asyncio.sleep(0.01)
        task.cancel()

    with caplog.at_level(logging.WARNING, logger="phi4ui.web.loopwatch"):
        asyncio.run(scenario())
    assert caplog.records == []


def spin_in_a_named_function(until: float) -> None:
    while time.monotonic() < until:
        sum(range(1000))


def test_a_stall_names_the_other_threads_that_were_busy(caplog):
    async def scenario() -> None:
        watch = LoopWatch(interval_s=0.01)
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(0.05)
        busy = threading.Thread(target=spin_in_a_named_function,
                                args=(time.monotonic() + 0.6,), name="spinner")
        busy.start()
        hold_the_loop_in_a_named_function()
        busy.join()
        await asyncio.sleep(0.05)
        task.cancel()

    with caplog.at_level(logging.WARNING, logger="phi4ui.web.loopwatch"):
        asyncio.run(scenario())
    message = caplog.records[0].getMessage()
    assert "\nbusy threads: spinner at test_loopwatch.py:" in message
    assert "spin_in_a_named_function" in message


def test_stalls_are_not_logged_while_reporting_is_off_but_still_counted(caplog):
    async def scenario() -> LoopWatch:
        watch = LoopWatch(interval_s=0.01, report_stalls=False)
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(0.05)
        hold_the_loop_in_a_named_function()
        await asyncio.sleep(0.05)
        task.cancel()
        return watch

    with caplog.at_level(logging.WARNING, logger="phi4ui.web.loopwatch"):
        watch = asyncio.run(scenario())
    assert caplog.records == []
    assert watch.figures()["loop_stall_max_ms"] >= 300


def busy_for(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_stall_says_how_long_the_garbage_collector_ran_in_it(caplog):
    """A collection holds Python's lock, so the stack spy cannot name it; the log must."""
    many_objects = [[i] for i in range(3_000_000)]  # a full collection walks them all
    record = logged_stall(caplog, lambda: gc.collect(generation=2))
    del many_objects
    found = re.search(r"held for (\d+) ms.*\ngarbage collection: (\d+) ms \(generation 2\)$",
                      record.getMessage(), re.S)
    assert found, record.getMessage()
    held_ms, collecting_ms = int(found[1]), int(found[2])
    assert 0.5 * held_ms <= collecting_ms <= held_ms + 20


def test_after_a_long_full_collection_the_heap_census_names_what_it_walked(caplog):
    many_lists = [[i] for i in range(3_000_000)]
    watch = watched(lambda: gc.collect(generation=2))
    with caplog.at_level(logging.WARNING, logger="phi4ui.web.loopwatch"):
        watch.log_heap_census()
    del many_lists
    [record] = [r for r in caplog.records if "garbage collection took" in r.getMessage()]
    found = re.match(r"The longest full garbage collection took (\d+) ms; it walks the "
                     r"([\d,]+) objects made since start, most numerous: builtins\.list "
                     r"([\d,]+)", record.getMessage())
    assert found, record.getMessage()
    assert int(found[1]) >= 50
    assert int(found[3].replace(",", "")) >= 3_000_000


def test_without_a_long_full_collection_there_is_no_census(caplog):
    gc.freeze()  # what is frozen is not walked: a quick collection
    try:
        watch = watched(lambda: gc.collect(generation=2))
    finally:
        gc.unfreeze()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="phi4ui.web.loopwatch"):
        watch.log_heap_census()
    assert caplog.records == []


def test_the_census_leaves_out_the_collections_made_while_the_app_starts(caplog):
    # The app collects everything once before its start-up freeze, with reporting off:
    # the census reported that collection (1.2 s) as the longest of those made since.
    many_lists = [[i] for i in range(3_000_000)]
    watch = watched(lambda: gc.collect(generation=2), report_stalls=False)
    watch.report_stalls = True
    with caplog.at_level(logging.WARNING, logger="phi4ui.web.loopwatch"):
        watch.log_heap_census()
    del many_lists
    assert caplog.records == []


def test_a_stall_without_a_collection_says_nothing_of_one(caplog):
    gc.disable()
    try:
        record = logged_stall(caplog, lambda: busy_for(0.2))
    finally:
        gc.enable()
    assert "garbage collection" not in record.getMessage()


def logged_split(caplog: Any, hold: Callable[[], None]) -> tuple[int, int, int]:
    """The stall's length, and the loop thread's ms on a CPU and waiting for one, as logged."""
    record = logged_stall(caplog, hold)
    found = re.search(r"held for (\d+) ms.*\nloop thread: (\d+) ms on a CPU, (\d+) ms waiting "
                      r"for one(\n|$)", record.getMessage(), re.S)
    assert found, record.getMessage()
    return int(found[1]), int(found[2]), int(found[3])


@pytest.mark.skipif(not os.path.exists("/proc/self/schedstat"), reason="Linux only")
def test_a_stall_of_the_loops_own_work_is_logged_as_time_on_a_cpu(caplog):
    held, running, waiting = logged_split(caplog, lambda: busy_for(0.3))
    assert held >= 280
    assert running + waiting >= 0.9 * held  # working, or ready to work
    assert running >= 280 * 0.5  # two busy cores at most beside it in the test runs


@pytest.mark.skipif(not os.path.exists("/proc/self/schedstat"), reason="Linux only")
def test_a_stall_of_a_blocked_loop_is_logged_as_neither(caplog):
    held, running, waiting = logged_split(caplog, lambda: time.sleep(0.3))
    assert held >= 280
    assert running + waiting < 0.5 * held  # off the CPU by its own doing


def test_full_collections_are_counted_with_their_time_once_the_app_serves():
    many_lists = [[i] for i in range(1_000_000)]  # a full collection of some milliseconds
    starting = watched(lambda: gc.collect(generation=2), report_stalls=False)
    serving = watched(lambda: (gc.collect(generation=2), gc.collect(generation=1)))
    del many_lists
    assert starting.figures()["gc_full_count"] == 0
    figures = serving.figures()
    assert figures["gc_full_count"] == 1  # the generation-1 collection is not one
    assert 0 < figures["gc_full_longest_ms"] == figures["gc_full_total_ms"]
