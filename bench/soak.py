"""The soak: many people using the app for a long while, to find leaks, stalls and errors.

    python -m bench.soak                       # 64 people for 10 minutes
    python -m bench.soak --quick               # 16 people for a minute
    python -m bench.soak --people 8 --minutes 3

The app runs as it is deployed (embedded engine, tiny checkpoint unless --model); the
people (bench/soak_people.py) run in processes of their own and send text, image and
audio messages through the page's steps, think between them, press Stop or close the
page mid-answer now and then. Every few seconds this process samples the memory of the
app's process and of the engine's processes (the app's process tree) and reads /healthz:
the engine's running requests and the app's worst event-loop stall. Writes
`<out>/soak.json` and `<out>/soak.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.__main__ import machine, versions
from bench.procs import ROOT, Service, app_command, free_port, start
from bench.workload import prepare_workspace
from phi4ui.core.stats import percentile

GOALS = {"errors": 0, "leaked_requests": 0, "memory_growth_pct": 5.0, "loop_stall_ms": 100.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="16 people for a minute")
    parser.add_argument("--people", type=int, default=64)
    parser.add_argument("--minutes", type=float, default=10.0, help="the whole run")
    parser.add_argument("--warmup-s", type=float, default=60.0,
                        help="the first part of the run, before memory's baseline is taken")
    parser.add_argument("--think-mean-s", type=float, default=4.0,
                        help="mean of the exponential pause between a person's messages")
    parser.add_argument("--mix", default="text=0.5,image=0.25,audio=0.25")
    parser.add_argument("--max-tokens", default="32,64,128",
                        help="answer lengths (max new tokens), one picked per message")
    parser.add_argument("--stop-share", type=float, default=0.1,
                        help="share of messages whose answer is stopped mid-way")
    parser.add_argument("--close-share", type=float, default=0.05,
                        help="share of messages whose page is closed mid-answer")
    parser.add_argument("--clear-share", type=float, default=0.1,
                        help="share of messages sent after clearing the conversation")
    parser.add_argument("--act-within-s", type=float, default=0.5,
                        help="Stop or close comes 0 to this many seconds after the first text")
    parser.add_argument("--client-processes", type=int, default=1)
    parser.add_argument("--sample-every-s", type=float, default=10.0)
    parser.add_argument("--quiet-s", type=float, default=5.0,
                        help="quiet after the run before leaked requests are counted")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", default="", help="checkpoint folder (default: tiny)")
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--max-num-seqs", type=int, default=64)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    args = parser.parse_args(argv)
    if args.quick:
        args.people, args.minutes, args.warmup_s, args.sample_every_s = 16, 1.0, 15.0, 5.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    workspace = prepare_workspace(args.out, args.model, args.max_model_len, args.max_num_seqs,
                                  "phi4ui-soak-")
    out, work, app_args, media = (workspace.out, workspace.work, workspace.app_args,
                                  workspace.media)
    run: dict[str, Any] = {
        "command": ("python -m bench.soak " + shlex.join(
            sys.argv[1:] if argv is None else argv)).strip(),
        "machine": machine(), "versions": versions(), "app_args": app_args,
        "app_environment": {k: v for k, v in os.environ.items() if k.startswith("PHI4UI_")
                            and k not in ("PHI4UI_AUTH", "PHI4UI_API_KEY")},
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_before": _rounded(load_before),
        **_source()}
    port = free_port()
    app = start("app", app_command(app_args, port), port, work)
    try:
        run["app_start"] = {"page_s": app.wait_for("/", "page"),
                            "engine_ready_s": app.wait_for("/healthz", "engine_ready"),
                            "loop_stall_max_ms": _healthz(app).get("loop_stall_max_ms")}
        run.update(_soak(app, args, media, work))
    finally:
        app.stop()
    app_log = app.log.read_text(errors="replace")
    run["stalls_logged"] = worst_stacks(logged_stalls(app_log))
    run["heap_census"] = heap_census(app_log)
    run["load_after"] = _rounded(os.getloadavg())
    run["summary"] = summary(run)
    # Every message is summarised above; the report keeps only those that went wrong.
    messages = run["people"].pop("messages")
    run["people"]["messages_with_errors"] = [m for m in messages if m["outcome"] == "error"]
    (out / "soak.json").write_text(json.dumps(run, indent=2))
    (out / "soak.md").write_text(markdown(run))
    print(markdown(run))
    return 0


def _source() -> dict[str, Any]:
    """The commit, and the files that differ from it: the app runs from the working tree."""
    def git(*command: str) -> str:
        # Not strip(): a status line starts with a space (" M path").
        return subprocess.run(["git", *command], cwd=ROOT, capture_output=True,
                              text=True).stdout.rstrip("\n")

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted": [line[3:] for line in git("status", "--porcelain").splitlines()]}


def _soak(app: Service, args: argparse.Namespace, media: dict[str, str],
          work: Path) -> dict[str, Any]:
    first_use = {"messages": _first_use(app.url, media, work),
                 "loop_stall_max_ms": _healthz(app).get("loop_stall_max_ms")}
    clients = _start_people(app.url, args, media, work)
    began = time.perf_counter()
    samples: list[dict[str, Any]] = []
    people_cpu = CpuMeter([c.pid for c, _ in clients])
    try:
        while any(c.poll() is None for c, _ in clients):
            time.sleep(min(1.0, args.sample_every_s))
            elapsed = time.perf_counter() - began
            if not samples or elapsed - samples[-1]["t_s"] >= args.sample_every_s:
                samples.append({**_sample(app, elapsed), "people_cpu_pct": people_cpu.pct()})
    finally:
        for client, _ in clients:
            if client.poll() is None:
                client.kill()
                client.wait(10)
    if any(c.returncode for c, _ in clients):
        raise RuntimeError(f"a people process failed; see {work}")
    time.sleep(args.quiet_s)
    after = _sample(app, time.perf_counter() - began)
    people = [json.loads(out.read_text()) for _, out in clients]
    return {"first_use": first_use, "samples": samples, "after_quiet": after,
            "people": _merged(people)}


def _first_use(url: str, media: dict[str, str], work: Path) -> list[dict[str, Any]]:
    """One message of each kind, one after another, before the people come: the engine's
    first image and first audio clip load its adapters and encoders, which holds every
    answer running beside them. Their figures are reported apart."""
    job = {"url": url, "media": media, "seed": 0, "people": [0], "end_s": 0.0,
           "sequence": ["text", "image", "audio"], "think_mean_s": 1.0, "max_tokens": [32],
           "act_within_s": 0.0}
    job_file, out_file = work / "first-use-job.json", work / "first-use-out.json"
    job_file.write_text(json.dumps(job))
    subprocess.run([sys.executable, "-m", "bench.soak_people", str(job_file), str(out_file)],
                   cwd=ROOT, check=True)
    return json.loads(out_file.read_text())["messages"]


def _start_people(url: str, args: argparse.Namespace, media: dict[str, str],
                  work: Path) -> list[tuple[subprocess.Popen[bytes], Path]]:
    mix = {kind: float(share) for kind, share in
           (item.split("=") for item in args.mix.split(","))}
    started = []
    for n in range(args.client_processes):
        job = {"url": url, "media": media, "seed": args.seed, "mix": mix,
               "people": list(range(n, args.people, args.client_processes)),
               "end_s": args.minutes * 60, "think_mean_s": args.think_mean_s,
               "max_tokens": [int(t) for t in args.max_tokens.split(",")],
               "stop_share": args.stop_share, "close_share": args.close_share,
               "clear_share": args.clear_share, "act_within_s": args.act_within_s}
        job_file, out_file = work / f"people-{n}-job.json", work / f"people-{n}-out.json"
        job_file.write_text(json.dumps(job))
        log = (work / f"people-{n}.log").open("wb")
        started.append((subprocess.Popen(
            [sys.executable, "-m", "bench.soak_people", str(job_file), str(out_file)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), out_file))
    return started


def _sample(app: Service, elapsed: float) -> dict[str, Any]:
    """Memory of the app and engine processes, /healthz and the machine's load."""
    sample: dict[str, Any] = {"t_s": round(elapsed, 1), **process_memory(app.process.pid),
                              "load1": round(os.getloadavg()[0], 2)}
    return {**sample, **_healthz(app)}


def _healthz(app: Service) -> dict[str, Any]:
    try:
        return httpx.get(app.url + "/healthz", timeout=10).json()
    except httpx.HTTPError as error:
        return {"healthz_error": str(error)}


class CpuMeter:
    """CPU used by some processes between two readings, in % of one core."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.used = {pid: _cpu_s(pid) for pid in pids}
        self.at = time.perf_counter()

    def pct(self) -> float:
        now, used = time.perf_counter(), {pid: _cpu_s(pid) for pid in self.pids}
        # A process that has ended reads 0: its last stretch is not counted.
        spent = sum(max(0.0, used[pid] - self.used[pid]) for pid in self.pids if used[pid])
        pct = round(100 * spent / max(now - self.at, 1e-6), 1)
        self.used, self.at = used, now
        return pct


def _cpu_s(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def process_memory(app_pid: int) -> dict[str, Any]:
    """RSS of the app's own process, and of the engine: every process under it (vLLM's
    engine core and its worker), found by the process tree."""
    try:
        root = psutil.Process(app_pid)
        children = root.children(recursive=True)
        app_rss = root.memory_info().rss
    except psutil.Error:
        return {"app_rss": 0, "engine_rss": 0, "engine_processes": []}
    engine = []
    for child in children:
        try:
            engine.append({"pid": child.pid, "name": child.name(),
                           "rss": child.memory_info().rss})
        except psutil.Error:
            continue
    return {"app_rss": app_rss, "engine_rss": sum(p["rss"] for p in engine),
            "engine_processes": engine}


def _merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    cpu_s = sum(r["cpu_s"] for r in results)
    wall_s = max(r["wall_s"] for r in results)
    return {"messages": [m for r in results for m in r["messages"]],
            "pages_opened": sum(r["pages_opened"] for r in results),
            "people_failed": [f for r in results for f in r["people_failed"]],
            "cpu_s": round(cpu_s, 1), "wall_s": wall_s,
            "cpu_pct_of_one_core": round(100 * cpu_s / wall_s, 1) if wall_s else None}


# ---------------------------------------------------------------- figures

def summary(run: dict[str, Any]) -> dict[str, Any]:
    messages = run["people"]["messages"]
    outcomes = Counter(m["outcome"] for m in messages)
    errors = Counter(m["error"] for m in messages if m["outcome"] == "error")
    errors.update(f"a person's loop failed: {f}" for f in run["people"]["people_failed"])
    ttfts = [m["ttft_s"] for m in messages if m["ttft_s"] is not None]
    warmup_s = run["settings"]["warmup_s"]
    measured = [s for s in run["samples"] if s["t_s"] >= warmup_s] or run["samples"][-1:]
    first, last = measured[0], measured[-1]
    middle = min(measured, key=lambda s: abs(s["t_s"] - (first["t_s"] + last["t_s"]) / 2))
    after = run["after_quiet"]
    return {
        "messages": len(messages), "by_kind": dict(Counter(m["kind"] for m in messages)),
        "completed": outcomes["completed"], "stopped": outcomes["stopped"],
        "closed": outcomes["closed"], "errors": sum(errors.values()),
        "errors_by_kind": dict(errors.most_common()), "pages_opened": run["people"]["pages_opened"],
        "ttft_p50_ms": _ms(percentile(ttfts, 50)), "ttft_p95_ms": _ms(percentile(ttfts, 95)),
        "ttft_by_kind_ms": {kind: [_ms(percentile(times, 50)), _ms(percentile(times, 95))]
                            for kind, times in _ttfts_by_kind(messages).items()},
        "leaked_running": after.get("running"), "leaked_waiting": after.get("waiting"),
        "memory": {role: _growth(first[role], middle[role], last[role], after[role])
                   for role in ("app_rss", "engine_rss")},
        "memory_at_s": [first["t_s"], middle["t_s"], last["t_s"], after["t_s"]],
        "loop_stall_worst_ms": max((s.get("loop_stall_recent_ms", 0.0) for s in measured),
                                   default=None),
        "loop_stall_since_start_ms": after.get("loop_stall_max_ms"),
        "full_collections": _full_collections(first, last),
        "people_cpu_pct_of_one_core": run["people"]["cpu_pct_of_one_core"],
        "people_cpu_pct_worst_interval": max((s.get("people_cpu_pct", 0.0)
                                              for s in run["samples"]), default=None),
    }


def _full_collections(first: dict[str, Any], last: dict[str, Any]) -> dict[str, Any] | None:
    """The app's full garbage collections between two samples: how many, and their mean
    time. One worst stall says little about a change; the mean of dozens says more."""
    if "gc_full_count" not in first or "gc_full_count" not in last:
        return None  # an app without these figures in /healthz
    count = last["gc_full_count"] - first["gc_full_count"]
    total_ms = last["gc_full_total_ms"] - first["gc_full_total_ms"]
    return {"count": count, "mean_ms": round(total_ms / count, 1) if count else None,
            "longest_since_start_ms": last["gc_full_longest_ms"]}


STALL_LINE = re.compile(r"The event loop was held for (\d+) ms(?:, in:\n((?:  .*\n?)+))?"
                        r"(?:busy threads: (.*)\n?)?"
                        r"(?:\n?loop thread: (\d+) ms on a CPU, (\d+) ms waiting for one)?"
                        r"(?:\n?garbage collection: (\d+) ms)?")


def logged_stalls(log: str) -> list[dict[str, Any]]:
    """The app's log lines for stalls over 100 ms (phi4ui.web.loopwatch): how long, the
    innermost frame that held the loop, and the innermost frame of phi4ui's own code
    under the entry point, if any."""
    stalls = []
    for match in STALL_LINE.finditer(log):
        stack = match[2] or ""
        frames = [f"{Path(path).name}:{line} {function}" for path, line, function
                  in re.findall(r'File "([^"]+)", line (\d+), in (\S+)', stack)]
        ours = [f"{Path(path).name}:{line} {function}" for path, line, function
                in re.findall(r'File "([^"]+/phi4ui/(?!commands/)[^"]+)", line (\d+), in (\S+)',
                              stack)]
        where = frames[-1] if frames else "unknown"
        if ours and ours[-1] != where:
            where += f" (in {ours[-1]})"
        stalls.append({"ms": int(match[1]), "where": where, "stack": stack.rstrip(),
                       "busy_threads": match[3] or "",
                       **({"on_cpu_ms": int(match[4]), "waiting_for_cpu_ms": int(match[5])}
                          if match[4] is not None else {}),
                       "collecting_ms": int(match[6] or 0)})
    return stalls


def heap_census(log: str) -> str | None:
    """The app's census of its heap at shutdown, logged after a long full collection."""
    found = re.search(r"The longest full garbage collection took .*", log)
    return found[0].rstrip(".") if found else None


def stall_split(stalls: list[dict[str, Any]]) -> str:
    """How the logged stalls' time divides, from the loop thread's scheduler figures."""
    split = [s for s in stalls if "on_cpu_ms" in s]
    if not split:
        return "not measured (no scheduler figures in the log)"
    total = sum(s["ms"] for s in split)
    running = sum(min(s["on_cpu_ms"], s["ms"]) for s in split)
    waiting = sum(min(s["waiting_for_cpu_ms"], s["ms"]) for s in split)
    other = max(0, total - running - waiting)
    held = [s for s in split if s["ms"] >= 200]
    held_other = sum(max(0, s["ms"] - s["on_cpu_ms"] - s["waiting_for_cpu_ms"]) for s in held)
    return (f"of {total:,} ms in {len(split)} stalls, the loop thread ran {running / total:.0%}"
            f", waited for a CPU {waiting / total:.0%} and was off the CPU by its own doing "
            f"(Python's lock, a blocking call) {other / total:.0%}; in the {len(held)} stalls "
            f"of 200 ms or more that last share was "
            f"{held_other / max(1, sum(s['ms'] for s in held)):.0%}"
            f"{garbage_collection(split)}")


def garbage_collection(stalls: list[dict[str, Any]]) -> str:
    """`; Python's garbage collector ran N% of it, in K stalls`, from the stall log."""
    collected = [s for s in stalls if s.get("collecting_ms")]
    total = sum(s["ms"] for s in stalls)
    if not collected or not total:
        return "; the garbage collector ran in none of them"
    share = sum(min(s["collecting_ms"], s["ms"]) for s in collected) / total
    return (f"; Python's garbage collector ran {share:.0%} of that time, in {len(collected)} "
            f"of the {len(stalls)} stalls")


def worst_stacks(stalls: list[dict[str, Any]], count: int = 10) -> list[dict[str, Any]]:
    """The longest stalls with their stacks; the others keep only where they were."""
    worst = sorted(stalls, key=lambda stall: -stall["ms"])[:count]
    return [*worst, *({k: v for k, v in stall.items() if k != "stack"}
                      for stall in stalls if stall not in worst)]


def stall_places(stalls: list[dict[str, Any]]) -> str:
    """Where the logged stalls were, the place with the most first."""
    if not stalls:
        return "none logged"
    by_place: dict[str, list[int]] = {}
    for stall in stalls:
        by_place.setdefault(stall["where"], []).append(stall["ms"])
    places = sorted(by_place.items(), key=lambda item: (-len(item[1]), -max(item[1])))
    return "; ".join(f"`{where}` {len(ms)}x, worst {max(ms)} ms" for where, ms in places[:6])


def _ttfts_by_kind(messages: list[dict[str, Any]]) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for m in messages:
        if m["ttft_s"] is not None:
            found.setdefault(m["kind"], []).append(m["ttft_s"])
    return dict(sorted(found.items()))


def _growth(start: int, middle: int, end: int, after: int) -> dict[str, Any]:
    return {"start": start, "middle": middle, "end": end, "after_quiet": after,
            "growth_pct": round(100 * (end - start) / start, 2) if start else None}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _rounded(load: tuple[float, float, float]) -> list[float]:
    return [round(x, 2) for x in load]


def markdown(run: dict[str, Any]) -> str:
    s, m, settings = run["summary"], run["machine"], run["settings"]
    mem = s["memory"]
    worst_growth = max(mem[r]["growth_pct"] or 0.0 for r in mem)
    lines = [
        f"## Soak ({run['started']})", "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, GPU: "
        f"{m['gpu'] or 'none'}; Python {m['python']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in run["versions"].items()) + ".",
        f"Model: {settings['model'] or 'the tiny random-weight checkpoint'}; app: "
        f"`{' '.join(run['app_args'])}`"
        + "".join(f", `{k}={v}`" for k, v in run.get("app_environment", {}).items()) + ".",
        f"Command: `{run['command']}`: {settings['people']} people for {settings['minutes']} "
        f"minutes (the first {settings['warmup_s']:.0f} s are warm-up), think time exponential "
        f"with mean {settings['think_mean_s']} s, mix {settings['mix']}, max tokens "
        f"{settings['max_tokens']}, Stop {settings['stop_share']:.0%} and page closed "
        f"{settings['close_share']:.0%} of answers, cleared before {settings['clear_share']:.0%}"
        " of messages.",
        f"Load average (1, 5, 15 min) before {run['load_before']}, after {run['load_after']}.",
        f"Source: commit {run['commit']}, with {len(run['uncommitted'])} files changed in the "
        "working tree (listed in the JSON).",
        "",
        "| figure | goal | measured | met |", "|---|---|---|---|",
        _row("errors", "0", f"{s['errors']} of {s['messages']} messages", s["errors"] == 0),
        _row("engine requests leaked (running / waiting after "
             f"{settings['quiet_s']:.0f} s quiet)", "0",
             f"{s['leaked_running']} / {s['leaked_waiting']}",
             s["leaked_running"] == 0 and s["leaked_waiting"] == 0),
        *(_row(f"{label} RSS start / middle / end (after quiet)", "< 5% growth",
               f"{_gib(mem[r]['start'])} / {_gib(mem[r]['middle'])} / {_gib(mem[r]['end'])} "
               f"({_gib(mem[r]['after_quiet'])}): {mem[r]['growth_pct']:+.2f}%",
               (mem[r]["growth_pct"] or 0.0) < GOALS["memory_growth_pct"])
          for r, label in (("app_rss", "app process"), ("engine_rss", "engine processes"))),
        _row("worst event-loop stall after warm-up", "< 100 ms",
             f"{s['loop_stall_worst_ms']} ms", (s["loop_stall_worst_ms"] or 0) < 100),
        "",
        f"- Messages: {s['messages']} ({_kinds(s['by_kind'])}); answers completed "
        f"{s['completed']}, stopped {s['stopped']}, page closed mid-answer {s['closed']}; "
        f"{s['pages_opened']} pages opened.",
        f"- Errors by kind: {_errors(s['errors_by_kind'])}.",
        f"- Time to first token (from pressing Enter): p50 {s['ttft_p50_ms']} ms, p95 "
        f"{s['ttft_p95_ms']} ms; " + ", ".join(
            f"{kind} {p50} / {p95} ms" for kind, (p50, p95) in s["ttft_by_kind_ms"].items())
        + " (p50 / p95).",
        f"- Memory sampled at {', '.join(f'{t:.0f} s' for t in s['memory_at_s'])} "
        f"(start, middle, end, after quiet); worst growth {worst_growth:+.2f}%.",
        "- First use after start, one message at a time before the people came (not "
        "counted above): " + ", ".join(
            f"{m['kind']} {m['ttft_s']:.2f} s to first token" if m["ttft_s"] is not None
            else f"{m['kind']}: {m['error'] or m['outcome']}"
            for m in run["first_use"]["messages"]) + ".",
        f"- Worst stall since the app started: {run['app_start']['loop_stall_max_ms']} ms when "
        f"the engine was ready, {run['first_use']['loop_stall_max_ms']} ms after the first "
        f"uses, {s['loop_stall_since_start_ms']} ms at the end.",
        f"- {_collections_line(s.get('full_collections'))}",
        f"- Stalls over 100 ms that the app logged with where the loop was held (from the "
        f"engine's start, warm-up and first uses included): "
        f"{len(run.get('stalls_logged', []))}; "
        f"{stall_places(run.get('stalls_logged', []))}.",
        f"- Where the stalls' time went: {stall_split(run.get('stalls_logged', []))}.",
        f"- Python's heap at the app's end: {run.get('heap_census') or 'no census logged'}.",
        f"- The people's processes used {s['people_cpu_pct_of_one_core']}% of one core on "
        f"average ({s['people_cpu_pct_worst_interval']}% in the busiest "
        f"{settings['sample_every_s']:.0f} s).",
        "",
    ]
    return "\n".join(lines)


def _collections_line(full: dict[str, Any] | None) -> str:
    if full is None:
        return "Full garbage collections: not reported by this app."
    mean = f", {full['mean_ms']} ms on average" if full["mean_ms"] is not None else ""
    return (f"Full garbage collections after warm-up: {full['count']}{mean} (the longest "
            f"since the engine was ready: {full['longest_since_start_ms']} ms).")


def _row(figure: str, goal: str, measured: str, met: bool) -> str:
    return f"| {figure} | {goal} | {measured} | {'yes' if met else '**no**'} |"


def _kinds(by_kind: dict[str, int]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in sorted(by_kind.items()))


def _errors(errors: dict[str, int]) -> str:
    return "; ".join(f"{count}x {kind}" for kind, count in errors.items()) or "none"


def _gib(value: int) -> str:
    return f"{value / 2**30:.2f} GiB"


if __name__ == "__main__":
    sys.exit(main())
