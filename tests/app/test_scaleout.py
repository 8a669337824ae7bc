"""`serve --frontends 2 --scale-out server`: vLLM's own server with two API processes, two
page processes and HAProxy in front, as one command. Through the proxy a visitor stays on
one page process, answers carry the engine's figures from the multi-process server, a page
process that dies is started again, and SIGTERM stops every process it started."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from bench.procs import wait_until_ready
from phi4ui.engines.cpu_priority import ENGINE_NICE
from phi4ui.scaleout.haproxy import STICKY_COOKIE
from tests.support.apprun import START_TIMEOUT_S, RunningApp, health, launch_app
from tests.support.pageclient import PageClient, send

pytestmark = [pytest.mark.engine, pytest.mark.skipif(
    not Path("/usr/sbin/haproxy").exists(), reason="needs Debian's haproxy (scripts/setup.sh)")]


@pytest.fixture(scope="module")
def cluster(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    app = launch_app(checkpoint, tmp_path_factory.mktemp("scaled"), "--frontends", "2",
                     "--scale-out", "server", "--api-servers", "2")
    try:
        # Three processes start one after the other: the server, then the two pages.
        wait_until_ready(app.process, lambda: health(app.url) is not None, name="the proxy",
                         timeout_s=3 * START_TIMEOUT_S, log=app.log, every_s=1)
        yield app
    finally:
        app.stop()


def page_processes(app: RunningApp) -> dict[int, psutil.Process]:
    """The page processes the command started, by the port each listens on."""
    found = {}
    for child in psutil.Process(app.process.pid).children():
        try:  # one just killed is a zombie until its supervisor notices
            with_port = child.environ().get("PHI4UI_PORT")
            serves = "serve" in child.cmdline()
        except psutil.Error:
            continue
        if serves and with_port:
            found[int(with_port)] = child
    return found


def wait_for(condition, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}")


def two_visitors_talk_twice(url: str) -> list[str | None]:
    """Two visitors send two messages each through the proxy: every answer succeeds, each
    conversation holds both messages, and every answer shows the engine's figures. Returns
    the visitors' sticky cookies."""
    visitors = [PageClient(url) for _ in range(2)]
    try:
        for visitor in visitors:
            for _ in range(2):  # a second message reaches the same process's conversation
                answered, chat = send(visitor, "Hello there")
                assert answered.success, answered.raw[-2000:]
            shown = json.dumps(chat)
            assert shown.count("Hello there") == 2, shown[-2000:]
            missing = shown.split("Not reported by this engine")[-1]
            for figure in ("KV-cache use", "queue time", "prefill time", "decode time"):
                assert figure not in missing, missing[:400]
        return [v.http.cookies.get(STICKY_COOKIE) for v in visitors]
    finally:
        for visitor in visitors:
            visitor.close()


def test_each_visitor_stays_on_one_page_process_and_sees_the_engine_s_figures(
        cluster: RunningApp) -> None:
    # KV cache, queue, prefill and decode come from the server's /metrics, summed over its
    # two API processes.
    cookies = two_visitors_talk_twice(cluster.url)
    assert all(cookies) and cookies[0] != cookies[1], cookies  # round-robin, then sticky
    body = health(cluster.url)
    assert body is not None and body["state"] == "ready"
    assert body["running"] == 0  # the server's gauges, read through /metrics


def test_a_page_process_that_dies_is_started_again(cluster: RunningApp) -> None:
    before = page_processes(cluster)
    assert len(before) == 2
    port, victim = sorted(before.items())[0]
    victim.send_signal(signal.SIGKILL)
    # The other one keeps serving through the proxy meanwhile.
    assert httpx.get(f"{cluster.url}/healthz", timeout=10).status_code == 200
    wait_for(lambda: (p := page_processes(cluster).get(port)) is not None
             and p.pid != victim.pid and health(f"http://127.0.0.1:{port}") is not None,
             240, f"page process on port {port} started again")
    assert "starting it again" in cluster.log(400)


def test_on_the_cpu_the_engine_s_server_runs_below_the_pages(cluster: RunningApp) -> None:
    """The pages' event loops get a CPU before vLLM's server; its session is lowered too,
    or the kernel's grouping by session (autogroup) would rank it equal to the pages."""
    app = psutil.Process(cluster.process.pid)
    server = next(child for child in app.children()
                  if "serve" in child.cmdline() and "vllm" in " ".join(child.cmdline()))
    lowered = min(app.nice() + ENGINE_NICE, 19)
    for process in [server, *server.children(recursive=True)]:
        assert process.nice() == lowered, process.cmdline()
    assert all(page.nice() == app.nice() for page in page_processes(cluster).values())
    autogroup = Path(f"/proc/{server.pid}/autogroup")
    if autogroup.exists():
        assert autogroup.read_text().split()[-1] == str(ENGINE_NICE), autogroup.read_text()


def test_sigterm_stops_every_process_it_started(cluster: RunningApp) -> None:
    started = psutil.Process(cluster.process.pid).children(recursive=True)
    assert len(started) >= 4  # the server's processes, two pages, HAProxy
    cluster.process.send_signal(signal.SIGTERM)
    assert cluster.process.wait(120) == 0
    _, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, [p.info for p in alive] if alive else None
