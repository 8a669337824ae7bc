"""The simulated people spread over several client processes, so that the load generator
is not what it measures.

Each of `client_procs` processes plays an even share of each scenario's people
(`clients.people_of`); the processes start each scenario together (a barrier) and send
back every request's timing, which are pooled here: token counts summed, percentiles over
all requests, the window from the first start to the last end (one monotonic clock for
the whole machine). Each process also reports its CPU time (user + system) over the
scenario's wall time (from the start barrier to the one all reach when done), the figure
that says whether the clients had room to spare; the first process also takes the whole
machine's CPU over that window, by kind of process (bench/machine_cpu.py).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import queue
import sys
import time
import traceback
from dataclasses import asdict
from typing import Any

from bench import machine_cpu
from bench.workload import RequestTiming, Scenario, ScenarioResult

BARRIER_TIMEOUT_S = 3600
Message = tuple[str, int, int, Any]  # (kind, process, scenario index, payload)


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Runs the job's scenarios over its client processes; one summary per scenario."""
    processes = max(1, int(job.get("client_procs", 1)))
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes, timeout=BARRIER_TIMEOUT_S)
    inbox: multiprocessing.Queue[Message] = context.Queue()
    workers = [context.Process(target=_worker, args=(job, k, processes, barrier, inbox),
                               daemon=True) for k in range(processes)]
    for worker in workers:
        worker.start()
    try:
        reports = _collect(inbox, workers, len(job["scenarios"]))
    finally:
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.kill()
    return {"results": [_merged(job, index, spec, reports[index], processes)
                        for index, spec in enumerate(job["scenarios"])],
            "client_procs": processes, "host_cpus": os.cpu_count()}


def _collect(inbox: multiprocessing.Queue[Message], workers: list[Any],
             scenarios: int) -> dict[int, dict[int, Any]]:
    reports: dict[int, dict[int, Any]] = {i: {} for i in range(scenarios)}
    expected = scenarios * len(workers)
    while sum(len(r) for r in reports.values()) < expected:
        try:
            kind, process, index, payload = inbox.get(timeout=5)
        except queue.Empty:
            if dead := [w.exitcode for w in workers if w.exitcode not in (None, 0)]:
                raise RuntimeError(f"a client process exited with {dead[0]}") from None
            continue
        if kind == "failed":
            raise RuntimeError(f"client process {process} failed:\n{payload}")
        reports[index][process] = payload
    return reports


def _merged(job: dict[str, Any], index: int, spec: dict[str, Any],
            reports: dict[int, Any], processes: int) -> dict[str, Any]:
    result = ScenarioResult(job["path"], Scenario(**spec))
    for process in range(processes):
        result.requests += [RequestTiming(**r) for r in reports[process]["requests"]]
    summary = result.summary()
    summary["client_cpu"] = [reports[p]["cpu"] for p in range(processes)]
    if machine := reports[0].get("machine_cpu"):
        summary["machine_cpu"] = machine
    print(json.dumps(summary), file=sys.stderr, flush=True)
    return summary


def _worker(job: dict[str, Any], process: int, processes: int, barrier: Any,
            inbox: multiprocessing.Queue[Message]) -> None:
    try:
        asyncio.run(_play(job, process, processes, barrier, inbox))
    except BaseException:  # told to the coordinator, which stops the run
        inbox.put(("failed", process, -1, traceback.format_exc()))
        barrier.abort()
        raise


async def _play(job: dict[str, Any], process: int, processes: int, barrier: Any,
                inbox: multiprocessing.Queue[Message]) -> None:
    from bench.clients import people_for, people_of, run_people

    urls = job.get("urls") or [job["url"]]
    people = people_for(job, urls[process % len(urls)])
    kinds = {s["kind"] for s in job["scenarios"]}
    try:
        if process == 0 and not job.get("no_warmup"):
            await people.prepare([0], kinds)
            for kind in kinds:  # the first image is encoded once, then cached
                await people.user(kind, 16, 0)
        for index, spec in enumerate(job["scenarios"]):
            scenario = Scenario(**spec)
            mine = people_of(scenario, process, processes)
            await people.prepare(mine, kinds)
            await asyncio.to_thread(barrier.wait)
            # The machine's snapshot is taken while every process waits, before the start.
            before = machine_cpu.snapshot(os.getppid()) if process == 0 else None
            await asyncio.to_thread(barrier.wait)
            cpu, wall = time.process_time(), time.perf_counter()
            timings = await run_people(people.user, scenario, mine)
            # CPU over the scenario's whole window: a process done early waits for the rest.
            await asyncio.to_thread(barrier.wait)
            cpu_share = (time.process_time() - cpu) / max(time.perf_counter() - wall, 1e-9)
            done: dict[str, Any] = {"requests": [asdict(t) for t in timings],
                                    "cpu": round(cpu_share, 3)}
            if before is not None:
                done["machine_cpu"] = machine_cpu.usage(before,
                                                        machine_cpu.snapshot(os.getppid()))
            inbox.put(("done", process, index, done))
    finally:
        await people.close()
