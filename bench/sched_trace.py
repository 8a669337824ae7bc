"""Who had the CPUs while the app's threads waited for one: the kernel's scheduler trace.

The app's loop watch says how long a stall was and how much of it the loop thread spent
waiting for a CPU, but not whose work filled the cores meanwhile. Linux's ftrace can: its
`sched_switch` and `sched_wakeup` events give every CPU's timeline.

    python -m bench.sched_trace record OUT_DIR [--app-log PATH]
        Traces into a ring buffer (32 MiB per CPU, a few minutes of a soak) until stopped
        (Ctrl-C or SIGTERM); each time the app logs a stall over 100 ms, saves the buffer
        and the machine's threads to OUT_DIR, and at the end saves what the buffer holds.
        Needs root and tracefs (mounted at /sys/kernel/tracing if it is not).
    python -m bench.sched_trace waits TRACE THREADS [--min-ms 20]
        Each time a thread of the app waited for a CPU at least that long, longest first,
        with what ran on each CPU meanwhile.

The app's log is found as the soak's newest (`phi4ui-soak-*/app.log` in the temporary
folder) unless given.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.soak import STALL_LINE

TRACING = Path("/sys/kernel/tracing")
EVENTS = ("sched_switch", "sched_wakeup", "sched_wakeup_new")
BUFFER_KIB_PER_CPU = 32768
LINE = re.compile(r"\[(\d+)\]\s+\S+\s+([\d.]+): (sched_\w+): (.*)")
FIELD = re.compile(r"(\w+)=(\S+)")


# ------------------------------------------------------------------ record

def record(out: Path, app_log: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _start_tracing()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    log, position, saved = app_log, 0, 0
    try:
        while not stop:
            time.sleep(0.5)
            log = log or _newest_soak_log()
            if log is None or not os.path.exists(log):
                continue
            stalls, position = _new_stalls(log, position)
            if stalls:
                saved += 1
                _save(out, f"stall-{saved}", f"stalls logged: {stalls}")
                position = os.path.getsize(log)  # what the saving itself held is not news
                _write("trace", "")
                _write("tracing_on", "1")
    except KeyboardInterrupt:
        pass
    finally:
        _save(out, "end", "the buffer at the end")
        _stop_tracing()


def _start_tracing() -> None:
    if not (TRACING / "trace").exists():
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACING)], check=True)
    _write("tracing_on", "0")
    _write("trace", "")
    _write("trace_clock", "mono")  # the clock of time.monotonic()
    _write("buffer_size_kb", str(BUFFER_KIB_PER_CPU))
    for event in EVENTS:
        _write(f"events/sched/{event}/enable", "1")
    _write("tracing_on", "1")


def _stop_tracing() -> None:
    _write("tracing_on", "0")
    for event in EVENTS:
        _write(f"events/sched/{event}/enable", "0")
    _write("trace", "")
    _write("buffer_size_kb", "1408")


def _write(name: str, value: str) -> None:
    (TRACING / name).write_text(value)


def _newest_soak_log() -> str | None:
    logs = sorted(glob.glob(os.path.join(tempfile.gettempdir(), "phi4ui-soak-*", "app.log")),
                  key=os.path.getmtime)
    return logs[-1] if logs and time.time() - os.path.getmtime(logs[-1]) < 120 else None


def _new_stalls(log: str, position: int) -> tuple[list[str], int]:
    with open(log, errors="replace") as file:
        file.seek(position)
        text = file.read()
        return [match[1] for match in STALL_LINE.finditer(text)], file.tell()


def _save(out: Path, name: str, why: str) -> None:
    _write("tracing_on", "0")
    threads = subprocess.run(["ps", "-eLo", "tid,pid,ni,comm,args"], capture_output=True,
                             text=True).stdout
    (out / f"{name}-threads.txt").write_text(
        f"saved at monotonic {time.monotonic():.6f}: {why}\n{threads}")
    with (TRACING / "trace").open("rb") as source, (out / f"{name}-trace.txt").open("wb") as to:
        while chunk := source.read(1 << 20):
            to.write(chunk)
    print(f"saved {name}: {why}", flush=True)


# ------------------------------------------------------------------ waits

@dataclass
class Thread:
    pid: int
    command: str


@dataclass
class Ran:
    cpu: int
    start: float
    end: float
    tid: int
    comm: str
    prio: int


def read_threads(path: Path) -> dict[int, Thread]:
    threads = {}
    for line in path.read_text().splitlines()[2:]:  # "saved at ...", then ps's header
        parts = line.split(None, 4)
        if len(parts) == 5:
            threads[int(parts[0])] = Thread(int(parts[1]), parts[4])
    return threads


def timeline(trace: Path) -> tuple[list[Ran], list[tuple[int, float, float]]]:
    """What ran on each CPU, and every spell a thread was ready to run but did not:
    (tid, from, to), from a wake-up or a preemption to the switch to it."""
    running: dict[int, tuple[int, str, int, float]] = {}
    ready: dict[int, float] = {}
    ran: list[Ran] = []
    waits: list[tuple[int, float, float]] = []
    with trace.open(errors="replace") as lines:
        for line in lines:
            if not (match := LINE.search(line)):
                continue
            cpu, at, event, rest = int(match[1]), float(match[2]), match[3], match[4]
            if event == "sched_switch":
                before, after = (dict(FIELD.findall(half)) for half in rest.split(" ==> "))
                if cpu in running:
                    tid, comm, prio, since = running[cpu]
                    ran.append(Ran(cpu, since, at, tid, comm, prio))
                nxt, prev = int(after["next_pid"]), int(before["prev_pid"])
                running[cpu] = (nxt, after["next_comm"], int(after["next_prio"]), at)
                if prev and before["prev_state"].startswith("R"):
                    ready[prev] = at  # preempted: still ready to run
                else:
                    ready.pop(prev, None)
                if nxt in ready:
                    waits.append((nxt, ready.pop(nxt), at))
            else:
                tid = int(dict(FIELD.findall(rest))["pid"])
                if all(r[0] != tid for r in running.values()):
                    ready.setdefault(tid, at)
    return ran, waits


def waits(trace: Path, threads_file: Path, min_ms: float, top: int = 12) -> str:
    threads = read_threads(threads_file)
    app = {t.pid for t in threads.values() if "app.py" in t.command}
    ran, spells = timeline(trace)
    if not ran:
        return "the trace holds no scheduler events"
    # Each CPU's buffer fills at its own pace: only where every CPU has events is complete.
    first = max(min(r.start for r in ran if r.cpu == cpu) for cpu in {r.cpu for r in ran})
    last = max(r.end for r in ran)
    long = sorted((s for s in spells if s[1] >= first and threads.get(s[0], Thread(0, "")).pid
                   in app and (s[2] - s[1]) * 1000 >= min_ms), key=lambda s: s[1] - s[2])
    lines = [f"The trace covers {last - first:.1f} s on every CPU; the app's threads waited "
             f"for a CPU {min_ms:g} ms or longer {len(long)} times."]
    for tid, since, until in long[:top]:
        lines.append(f"\n{_name(tid, '', threads)} waited {1000 * (until - since):.1f} ms "
                     f"from monotonic {since:.3f}:")
        lines += [f"  cpu{cpu}: {used}" for cpu, used in _used(ran, since, until, threads)]
    return "\n".join(lines)


def _used(ran: list[Ran], since: float, until: float,
          threads: dict[int, Thread]) -> list[tuple[int, str]]:
    per_cpu: dict[int, dict[tuple[str, int], float]] = defaultdict(lambda: defaultdict(float))
    for r in ran:
        if r.end > since and r.start < until:
            per_cpu[r.cpu][(_name(r.tid, r.comm, threads), r.prio)] += (
                min(r.end, until) - max(r.start, since))
    return [(cpu, ", ".join(f"{name} (prio {prio}) {1000 * s:.1f} ms" for (name, prio), s in
                            sorted(used.items(), key=lambda kv: -kv[1])[:6]))
            for cpu, used in sorted(per_cpu.items())]


def _name(tid: int, comm: str, threads: dict[int, Thread]) -> str:
    thread = threads.get(tid)
    if tid == 0:
        return "idle"
    if thread is None:
        return f"{comm or '?'}[{tid}]"
    command = thread.command
    kind = ("app" if "app.py" in command else "engine" if "VLLM" in command
            else "people" if "soak_people" in command else command.split()[0][-24:])
    return f"{kind}:{comm or tid}[{tid}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sched_trace", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record")
    rec.add_argument("out")
    rec.add_argument("--app-log")
    wait = commands.add_parser("waits")
    wait.add_argument("trace")
    wait.add_argument("threads")
    wait.add_argument("--min-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    if args.command == "record":
        record(Path(args.out), args.app_log)
    else:
        print(waits(Path(args.trace), Path(args.threads), args.min_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
