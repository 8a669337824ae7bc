"""The parts of `serve --frontends` that need no engine: HAProxy accepts the configuration
it is given, and each page process reads back the app's settings from its environment."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from bench.procs import answers_ok, free_port, start_in_group, stop_group, wait_until_ready
from phi4ui.engines.shared_core import ATTACHMENT_ENV, Attachment
from phi4ui.errors import SettingsError
from phi4ui.scaleout.cluster import page_environment, plan
from phi4ui.scaleout.haproxy import STICKY_COOKIE, check_config, config_text, haproxy_binary
from phi4ui.scaleout.processes import Child
from phi4ui.settings import load_settings

needs_haproxy = pytest.mark.skipif(not Path("/usr/sbin/haproxy").exists(),
                                   reason="needs Debian's haproxy (scripts/setup.sh --dev)")


@needs_haproxy
@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::1"])
def test_haproxy_accepts_the_configuration(tmp_path: Path, host: str) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(config_text(host, 7860, [40001, 40002, 40003]))
    check_config(haproxy_binary(), config)
    text = config.read_text()
    assert f"cookie {STICKY_COOKIE} insert" in text
    assert text.count("cookie page") == 3 and "option httpchk GET /healthz" in text


@needs_haproxy
def test_a_configuration_haproxy_refuses_is_a_settings_error(tmp_path: Path) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(config_text("127.0.0.1", 7860, [40001]).replace("balance", "balanse"))
    with pytest.raises(SettingsError, match="HAProxy refuses"):
        check_config(haproxy_binary(), config)


def test_each_page_process_gets_the_app_s_settings_but_serves_on_its_own_port() -> None:
    settings = load_settings(["--frontends", "3", "--auth", "ann:pw1", "--host", "0.0.0.0",
                              "--max-model-len", "8192", "--record", "false",
                              "--audio-max-seconds", "95.5", "--db-path", "/data/a.db"])
    environment = page_environment(settings, port=41234, base_url="http://127.0.0.1:9/v1",
                                   api_key="")
    page = load_settings([], environ=environment)
    assert dataclasses.replace(page, engine="embedded", base_url="", host="0.0.0.0",
                               port=settings.port, frontends=3, public_host="") == settings
    assert (page.engine, page.base_url, page.host, page.port, page.frontends) == (
        "remote", "http://127.0.0.1:9/v1", "127.0.0.1", 41234, 1)
    # Review is shown only where the visitors' address is private, or behind a login.
    assert page.public_host == "0.0.0.0"


@needs_haproxy
def test_by_default_the_pages_are_clients_of_one_engine_core_and_no_server_starts(
        tmp_path: Path) -> None:
    cluster = plan(load_settings(["--frontends", "3"]), tmp_path)
    assert cluster.shares_core and cluster.engine is None
    for child in cluster.pages:
        page = load_settings([], environ=dict(child.env))
        assert (page.engine, page.frontends, page.base_url) == ("embedded", 1, "")
    served = plan(load_settings(["--frontends", "3", "--scale-out", "server"]), tmp_path)
    assert not served.shares_core and served.engine is not None
    remote = plan(load_settings(["--frontends", "2", "--engine", "remote", "--base-url",
                                 "http://127.0.0.1:9/v1"]), tmp_path)
    assert not remote.shares_core and remote.engine is None  # the pages use that server


def test_a_page_reads_its_place_among_the_core_s_clients_from_its_environment() -> None:
    attachment = Attachment("ipc:///tmp/in", "ipc:///tmp/out", client_count=4, client_index=2)
    assert Attachment.from_env(attachment.as_env()) == attachment
    assert Attachment.from_env({}) is None and ATTACHMENT_ENV in attachment.as_env()


@needs_haproxy
def test_haproxy_starts_within_the_file_limit_it_was_configured_for(tmp_path: Path) -> None:
    # The GPU host had a hard limit of 20,000 open files; HAProxy refuses to start when its
    # connection limit does not fit (it needs two files per connection, and some more).
    config, port, limit = tmp_path / "haproxy.cfg", free_port(), 4000
    render = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, "
              f"{limit})); from phi4ui.scaleout.haproxy import config_text; "
              f"open(sys.argv[1], 'w').write(config_text('127.0.0.1', {port}, [1]))")
    subprocess.run([sys.executable, "-c", render, str(config)], check=True)

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    proxy = subprocess.Popen([haproxy_binary(), "-db", "-f", str(config)], preexec_fn=low_limit,
                             stderr=subprocess.PIPE, text=True)
    try:
        proxy.wait(2.0)
    except subprocess.TimeoutExpired:
        return  # still running: it started
    finally:
        proxy.kill()
    raise AssertionError(f"HAProxy ended at once: {proxy.stderr.read() if proxy.stderr else ''}")


@needs_haproxy
def test_a_streamed_answer_passes_the_proxy_chunk_by_chunk(tmp_path: Path) -> None:
    # Without `option http-no-delay`, HAProxy held small chunks back for about 200 ms
    # (the peer's delayed ACK): an answer's updates reached the browser in bursts.
    backend, port = free_port(), free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(config_text("127.0.0.1", port, [backend]))
    server = start_in_group([sys.executable, "-m", "tests.support.chunked_server", str(backend),
                             "40", "0.01"], tmp_path / "server.log")
    proxy = start_in_group([haproxy_binary(), "-db", "-f", str(config)], tmp_path / "proxy.log")
    try:
        for process, url in ((server, f"http://127.0.0.1:{backend}/healthz"),
                             (proxy, f"http://127.0.0.1:{port}/healthz")):
            wait_until_ready(process, functools.partial(answers_ok, url), name=url, timeout_s=30,
                             log=lambda: (tmp_path / "proxy.log").read_text())
        largest = sorted(_largest_gap(f"http://127.0.0.1:{port}/stream") for _ in range(3))
    finally:
        stop_group(proxy)
        stop_group(server)
    assert largest[1] < 0.12, f"largest gaps between chunks: {largest} s"


def _largest_gap(url: str) -> float:
    arrivals = []
    with httpx.stream("GET", url, timeout=30) as response:
        for _ in response.iter_raw():
            arrivals.append(time.perf_counter())
    assert len(arrivals) > 1
    return max(later - earlier for earlier, later in itertools.pairwise(arrivals))


@needs_haproxy
def test_a_request_to_a_page_process_that_is_dying_is_answered_by_another(
        tmp_path: Path) -> None:
    # A killed process's port still accepts connections until the kernel has torn the process
    # down; they then close unanswered. Without `retry-on empty-response` the person got a 502.
    dying, live, port = free_port(), free_port(), free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(config_text("127.0.0.1", port, [dying, live]))
    server = start_in_group([sys.executable, "-m", "tests.support.chunked_server", str(live),
                             "1", "0"], tmp_path / "server.log")
    with socket.create_server(("127.0.0.1", dying)) as unanswered:
        proxy = start_in_group([haproxy_binary(), "-db", "-f", str(config)],
                               tmp_path / "proxy.log")
        try:
            wait_until_ready(server, functools.partial(answers_ok,
                                                       f"http://127.0.0.1:{live}/healthz"),
                             name="server", timeout_s=30, log=lambda: "")
            wait_until_ready(proxy, functools.partial(_accepts, port), name="HAProxy",
                             timeout_s=30, log=lambda: (tmp_path / "proxy.log").read_text())
            threading.Timer(0.5, unanswered.close).start()
            codes = [httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code
                     for _ in range(4)]
        finally:
            stop_group(proxy)
            stop_group(server)
    assert codes == [200] * 4


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


def test_a_child_started_below_the_others_passes_that_on_to_what_it_starts() -> None:
    own = psutil.Process().nice()
    child = Child("sleeper", ["sh", "-c", "sleep 30 & exec sleep 30"], nice=7)
    child.start()
    try:
        shell = psutil.Process(child.pid)
        wait_until_ready(child.process, lambda: bool(shell.children()), name="the sleeper",
                         timeout_s=10, log=lambda: "", every_s=0.05)
        lowered = min(own + 7, 19)
        assert [shell.nice(), *(c.nice() for c in shell.children())] == [lowered, lowered]
        assert psutil.Process().nice() == own
        autogroup = Path(f"/proc/{child.pid}/autogroup")
        if autogroup.exists():  # its session ranks below the others too
            assert autogroup.read_text().split()[-1] == "7", autogroup.read_text()
    finally:
        child.stop(grace_s=5)
