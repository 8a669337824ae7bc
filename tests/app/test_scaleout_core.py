"""`serve --frontends 2 --scale-out core`: one vLLM engine core started by phi4ui, two page
processes each a direct client of it (no vLLM server, no HTTP between page and engine), and
HAProxy in front. Answers with images and sound come from the one core with the engine's
own figures, and every page knows what the core last reported to any of them; a page
process that dies leaves its visitors to the other; SIGTERM stops every process; an engine
core that dies stops the whole deployment."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from gradio_client import Client, handle_file

from bench.procs import wait_until_ready
from phi4ui.engines.cpu_priority import ENGINE_NICE
from tests.app.test_scaleout import page_processes, two_visitors_talk_twice, wait_for
from tests.support.apprun import START_TIMEOUT_S, RunningApp, health, launch_app
from tests.support.mediafiles import image_bytes, write_audio
from tests.support.pageclient import PageClient, send

pytestmark = [pytest.mark.engine, pytest.mark.skipif(
    not Path("/usr/sbin/haproxy").exists(), reason="needs Debian's haproxy (scripts/setup.sh)")]


def start_cluster(checkpoint: Path, scratch: Path) -> RunningApp:
    app = launch_app(checkpoint, scratch, "--frontends", "2", "--scale-out", "core")
    try:
        wait_until_ready(app.process, lambda: health(app.url) is not None, name="the proxy",
                         timeout_s=3 * START_TIMEOUT_S, log=app.log, every_s=1)
    except BaseException:
        app.stop()
        raise
    return app


@pytest.fixture(scope="module")
def cluster(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    app = start_cluster(checkpoint, tmp_path_factory.mktemp("core"))
    try:
        yield app
    finally:
        app.stop()


def engine_cores(app: RunningApp) -> list[psutil.Process]:
    return [p for p in psutil.Process(app.process.pid).children(recursive=True)
            if "EngineCore" in p.name() or "EngineCore" in " ".join(p.cmdline())]


def test_one_engine_core_and_no_vllm_server_serve_both_page_processes(
        cluster: RunningApp) -> None:
    started = psutil.Process(cluster.process.pid).children(recursive=True)
    assert len(engine_cores(cluster)) == 1, [p.cmdline() for p in started]
    assert not [p for p in started if "vllm" in " ".join(p.cmdline()) and "serve" in
                p.cmdline()], "no vLLM server"
    pages = page_processes(cluster)
    assert len(pages) == 2
    for page in pages.values():  # clients of the core: they start no engine of their own
        assert not [c for c in page.children(recursive=True) if "EngineCore" in c.name()]


def test_each_visitor_gets_answers_with_the_engine_s_own_figures(cluster: RunningApp) -> None:
    two_visitors_talk_twice(cluster.url)  # round-robin: one visitor per page process
    body = health(cluster.url)
    assert body is not None and body["state"] == "ready" and body["engine"] == "embedded"
    # Either page, whichever the core told of its last step, knows the engine is idle.
    for port in page_processes(cluster):
        page = health(f"http://127.0.0.1:{port}")
        assert page is not None and (page["running"], page["waiting"]) == (0, 0), page


@pytest.mark.parametrize("kind", ["image", "audio"])
def test_media_answers_use_their_adapter_on_the_shared_core(
        cluster: RunningApp, tmp_path: Path, kind: str) -> None:
    media = tmp_path / "photo.png"
    media.write_bytes(image_bytes((64, 48)))
    if kind == "audio":
        media = write_audio(tmp_path, "clip.wav", seconds=1.0)
    client = Client(cluster.url, verbose=False)
    answer, stats = client.predict("Describe it.", [handle_file(str(media))], None,
                                   "Be brief.", 0.0, 1.0, 24, 1, api_name="/chat")
    assert answer and stats["completion_tokens"] == 24
    assert stats["adapter"] == ("vision" if kind == "image" else "speech")
    assert stats[f"prompt_{kind}_tokens"] > 0
    for figure in ("ttft_s", "prefill_s", "decode_s"):
        assert stats[figure] is not None and stats[figure] >= 0, figure
    # On a CPU, the engine's memory is the core's processes', which the pages did not start.
    assert stats["snapshot"]["device_memory_used"] > 100 * 2**20, stats["snapshot"]


def test_on_the_cpu_the_engine_core_runs_below_the_pages(cluster: RunningApp) -> None:
    app = psutil.Process(cluster.process.pid)
    lowered = min(app.nice() + ENGINE_NICE, 19)
    for core in engine_cores(cluster):
        for process in [core, *core.children(recursive=True)]:
            assert process.nice() == lowered, process.cmdline()
    assert all(page.nice() == app.nice() for page in page_processes(cluster).values())


def test_a_page_process_that_dies_leaves_its_visitors_to_the_other(
        cluster: RunningApp) -> None:
    before = page_processes(cluster)
    (port, victim), (other_port, _) = sorted(before.items())
    # It dies while an answer of its own is in the engine: the core runs that to its end,
    # and the page left must then see the engine idle again.
    doomed = threading.Thread(target=_long_answer, args=(f"http://127.0.0.1:{port}",),
                              daemon=True)
    doomed.start()
    wait_for(lambda: (health(f"http://127.0.0.1:{port}") or {}).get("running"), 60,
             "the dying page's answer runs in the engine")
    victim.send_signal(signal.SIGKILL)
    wait_for(lambda: "cannot rejoin" in cluster.log(400), 30, "the supervisor noticed")
    visitor = PageClient(cluster.url)  # HAProxy's health check sends it to the live one
    try:
        answered, _ = send(visitor, "Still there?")
        assert answered.success, answered.raw[-2000:]
    finally:
        visitor.close()
    assert port not in page_processes(cluster)
    wait_for(lambda: (health(f"http://127.0.0.1:{other_port}") or {}).get("running") == 0,
             120, "the page left sees the engine idle once the dead page's answer ends")
    assert cluster.process.poll() is None


def _long_answer(url: str) -> None:
    client = PageClient(url)
    try:
        send(client, "Tell me everything.", max_tokens=2048)
    except Exception:  # noqa: BLE001 - its page is killed while it streams
        pass
    finally:
        client.close()


def test_sigterm_stops_every_process_it_started(cluster: RunningApp) -> None:
    started = psutil.Process(cluster.process.pid).children(recursive=True)
    assert engine_cores(cluster)
    cluster.process.send_signal(signal.SIGTERM)
    assert cluster.process.wait(120) == 0
    _, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, [p.info for p in alive] if alive else None
    assert "Traceback" not in cluster.log(4000)


def test_an_engine_core_that_dies_stops_the_deployment(
        checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    app = start_cluster(checkpoint, tmp_path_factory.mktemp("core-dies"))
    try:
        started = psutil.Process(app.process.pid).children(recursive=True)
        engine_cores(app)[0].send_signal(signal.SIGKILL)
        assert app.process.wait(120) == 1
        _, alive = psutil.wait_procs(started, timeout=30)
        assert not alive, [p.info for p in alive] if alive else None
        assert "The engine core stopped" in app.log(4000)
    finally:
        app.stop()
