"""How late the event loop runs a timer: a stall of the loop that serves every page.

A task sleeps a fixed short interval and records how much later than asked it woke.
Anything that holds the loop (a blocking call, a long stretch of CPU work between two
awaits, a flood of ready callbacks) delays that wake-up by about as long as it held it;
a stall of L ms reads as between L - interval and L ms.

A stall longer than `REPORT_AFTER_S` is logged with where the loop was held: a thread
of the watch looks at the loop thread's stack while the stall lasts, so the log names
the blocking call instead of only its length, and (on Linux, from the kernel's scheduler
statistics of the loop thread) how much of the stall the loop thread ran on a CPU and how
much it waited for one: a loop that ran for most of the stall did work of its own (many
ready callbacks, or one long one); one that waited for a CPU lost it to other processes;
the rest it was off the CPU by its own doing (a blocking call, or Python's lock). It also
gives how long Python's garbage collector ran during the stall, in any thread: a
collection holds Python's lock, so the stack spy cannot look while one runs.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import sys
import threading
import time
import types
from collections import Counter, deque
from pathlib import Path

INTERVAL_S = 0.02
BUCKET_S = 10.0
# "Recent" is the worst of the current and the previous BUCKET_S (the last 10 to 20 s), so
# that a monitor reading /healthz every 10 s sees every stall and when it happened.
RECENT_BUCKETS = 2
REPORT_AFTER_S = 0.1
STACK_LINES = 8  # innermost frames of the held loop that the log shows
SPY_EVERY_S = 0.02
NOTED_COLLECTION_S = 0.001  # shorter garbage collections are not kept
HEAP_CENSUS_AFTER_MS = 50  # a full collection this long is worth a census of the heap

log = logging.getLogger(__name__)


class LoopWatch:
    def __init__(self, interval_s: float = INTERVAL_S, *, report_stalls: bool = True) -> None:
        self.interval_s = interval_s
        self._collections = _Collections()
        self.report_stalls = report_stalls  # log long stalls with where the loop was held
        self.worst_s = 0.0
        self.wakeups = 0
        # The worst lateness of each BUCKET_S, newest last: a fixed cost per wake-up.
        self._buckets: deque[tuple[int, float]] = deque(maxlen=RECENT_BUCKETS)
        self._due_at = float("inf")  # when the sleeping watch should wake, time.monotonic()
        self._held_in: str | None = None  # the loop's stack, seen during the current stall

    @property
    def report_stalls(self) -> bool:
        return self._report_stalls

    @report_stalls.setter
    def report_stalls(self, on: bool) -> None:
        # While the app starts (reporting off), its one collection before the start-up
        # freeze walks everything loaded: not what the census is about.
        self._report_stalls = self._collections.counting_full = on

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        spy = threading.Thread(target=self._spy, args=(threading.get_ident(), stop),
                               name="loop-stall-spy", daemon=True)
        spy.start()
        schedstat = _SchedStat()  # of this thread, the loop's
        gc.callbacks.append(self._collections.note)
        try:
            while True:
                asked = loop.time() + self.interval_s
                slept_at = time.monotonic()
                self._due_at = slept_at + self.interval_s
                before = schedstat.read()
                await asyncio.sleep(self.interval_s)
                late_s = loop.time() - asked
                self.observe(late_s, _split(late_s, before, schedstat.read())
                             + self._collections.since(slept_at, late_s))
        finally:
            gc.callbacks.remove(self._collections.note)
            stop.set()
            schedstat.close()

    def _spy(self, loop_thread: int, stop: threading.Event) -> None:
        """Takes the loop thread's stack once a stall passes REPORT_AFTER_S, with where the
        process's other busy threads are: a loop that runs no Python code of its own is
        waiting for the interpreter's lock, which one of them holds."""
        while not stop.wait(SPY_EVERY_S):
            if self._held_in is None and time.monotonic() - self._due_at > REPORT_AFTER_S:
                frames = sys._current_frames()
                frame = frames.pop(loop_thread, None)
                frames.pop(threading.get_ident(), None)
                if frame is not None:
                    self._held_in = _innermost(frame) + _busy_threads(frames)

    def observe(self, late_s: float, split: str = "") -> None:
        late_s = max(0.0, late_s)
        held_in, self._held_in = self._held_in, None
        if late_s > REPORT_AFTER_S and self.report_stalls:
            log.warning("The event loop was held for %.0f ms%s%s", late_s * 1000,
                        f", in:\n{held_in}" if held_in else "", split)
        self.wakeups += 1
        self.worst_s = max(self.worst_s, late_s)
        bucket = int(time.monotonic() // BUCKET_S)
        if self._buckets and self._buckets[-1][0] == bucket:
            if late_s > self._buckets[-1][1]:
                self._buckets[-1] = (bucket, late_s)
        else:
            self._buckets.append((bucket, late_s))

    def log_heap_census(self) -> None:
        """At shutdown, after a full collection long enough to stall the loop: the kinds of
        object such a collection walks (those not frozen at start), most numerous first."""
        longest = self._collections.longest_full_s
        if longest * 1000 < HEAP_CENSUS_AFTER_MS:
            return
        kinds = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
        log.warning("The longest full garbage collection took %.0f ms; it walks the %s objects "
                    "made since start, most numerous: %s", longest * 1000,
                    f"{kinds.total():,}", ", ".join(f"{kind} {count:,}"
                                                   for kind, count in kinds.most_common(15)))

    def recent_s(self) -> float:
        oldest = int(time.monotonic() // BUCKET_S) - RECENT_BUCKETS + 1
        return max((late for bucket, late in self._buckets if bucket >= oldest), default=0.0)

    def figures(self) -> dict[str, float]:
        """For /healthz: the worst stall since start and of late, in ms; the full garbage
        collections since the app started serving, their total and longest time."""
        collections = self._collections
        return {"loop_stall_max_ms": round(self.worst_s * 1000, 1),
                "loop_stall_recent_ms": round(self.recent_s() * 1000, 1),
                "gc_full_count": collections.full_count,
                "gc_full_total_ms": round(collections.full_total_s * 1000, 1),
                "gc_full_longest_ms": round(collections.longest_full_s * 1000, 1)}


# Where a thread waits rather than works: its innermost function.
WAITING = frozenset({"wait", "_wait_for_tstate_lock", "select", "poll", "epoll", "get",
                     "recv", "recv_into", "accept", "sleep", "_worker", "wait_for", "join"})


def _innermost(frame: types.FrameType) -> str:
    """The innermost STACK_LINES frames as `traceback.format_stack` writes them. Not through
    `linecache`, which would keep each file on the stack as a list of its lines for as long
    as the app runs: thousands of strings that every full garbage collection walks."""
    stack: list[types.FrameType] = []
    while frame is not None and len(stack) < STACK_LINES:
        stack.append(frame)
        frame = frame.f_back  # type: ignore[assignment]
    return "\n".join(f'  File "{f.f_code.co_filename}", line {f.f_lineno}, in '
                     f"{f.f_code.co_name}\n    {_source_line(f.f_code.co_filename, f.f_lineno)}"
                     for f in reversed(stack))


def _source_line(path: str, number: int | None) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as source:
            return next(itertools.islice(source, (number or 1) - 1, None), "").strip()
    except OSError:
        return ""


def _busy_threads(frames: dict[int, types.FrameType]) -> str:
    """`\nbusy threads: name at file:line function; ...`, or nothing when all wait."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    busy = [f"{names.get(ident, ident)} at {Path(frame.f_code.co_filename).name}:"
            f"{frame.f_lineno} {frame.f_code.co_name}"
            for ident, frame in frames.items() if frame.f_code.co_name not in WAITING]
    return f"\nbusy threads: {'; '.join(busy[:6])}" if busy else ""


class _Collections:
    """The garbage collector's recent runs of a millisecond or more (a callback of
    `gc.callbacks`, called in whichever thread collects)."""

    def __init__(self) -> None:
        self._started = 0.0
        self._done: deque[tuple[float, float, int]] = deque(maxlen=64)  # end, seconds, gen
        # The full collections made since the app started serving (`counting_full`): their
        # number, time and the longest. A monitor (the soak) takes differences over a span.
        self.full_count = 0
        self.full_total_s = 0.0
        self.longest_full_s = 0.0
        self.counting_full = True

    def note(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.monotonic()
            return
        ended = time.monotonic()
        seconds = ended - self._started
        if info["generation"] == 2 and self.counting_full:
            self.full_count += 1
            self.full_total_s += seconds
            self.longest_full_s = max(self.longest_full_s, seconds)
        if seconds >= NOTED_COLLECTION_S:
            self._done.append((ended, seconds, info["generation"]))

    def since(self, start: float, late_s: float) -> str:
        """`\ngarbage collection: N ms (generation G)` of the collections that ran after
        `start`, or nothing without a stall worth logging or without a collection."""
        if late_s <= REPORT_AFTER_S:
            return ""
        ran = [(min(seconds, ended - start), generation) for ended, seconds, generation
               in list(self._done) if ended > start]
        if not ran:
            return ""
        generations = "/".join(str(g) for g in sorted({g for _, g in ran}))
        return (f"\ngarbage collection: {sum(s for s, _ in ran) * 1000:.0f} ms "
                f"(generation {generations})")


class _SchedStat:
    """The calling thread's time on a CPU and waiting for one, in ns, as the kernel counts
    them (`/proc/.../schedstat`); None where there is no such file. One read costs about
    a microsecond."""

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open(
                f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)
        except OSError:
            self._fd = None

    def read(self) -> tuple[int, int] | None:
        if self._fd is None:
            return None
        try:
            running, waiting = os.pread(self._fd, 128, 0).split()[:2]
            return int(running), int(waiting)
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _split(late_s: float, before: tuple[int, int] | None, after: tuple[int, int] | None
           ) -> str:
    """`\nloop thread: R ms on a CPU, W ms waiting for one` over the sleep and the stall
    after it, or nothing without the figures or without a stall worth logging."""
    if late_s <= REPORT_AFTER_S or before is None or after is None:
        return ""
    running_ms, waiting_ms = ((b - a) / 1e6 for a, b in zip(before, after, strict=True))
    return f"\nloop thread: {running_ms:.0f} ms on a CPU, {waiting_ms:.0f} ms waiting for one"
