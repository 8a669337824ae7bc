"""`serve --frontends N`: the engine, N page processes, HAProxy in front; started in that
order (each waits for the one before to be ready), stopped in the reverse order so that
answers in flight end first. The engine is vLLM's server with the pages on the remote
engine (`--scale-out server`), or one vLLM engine core with each page its direct client
(`--scale-out core`). A page process that dies is started again where it is an HTTP client
of the server (HAProxy sends its visitors to the others meanwhile); a client of the core
cannot rejoin it, and its visitors go to the others. If the engine or HAProxy dies,
everything stops."""

from __future__ import annotations

import dataclasses
import logging
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from phi4ui.engines import vllm_compat, vllm_server
from phi4ui.engines.cpu_priority import ENGINE_NICE
from phi4ui.engines.shared_board import forget_requests
from phi4ui.engines.shared_core import Attachment, SharedCore
from phi4ui.scaleout import core_launch
from phi4ui.scaleout.haproxy import check_config, config_text, haproxy_binary
from phi4ui.scaleout.processes import Child
from phi4ui.settings import Settings, env_name

log = logging.getLogger(__name__)
ENGINE_START_S = 1800.0  # a first start may download the model and compile CUDA graphs
PAGE_START_S = 300.0
PAGE_STOP_S = 30.0  # the pages' own shutdown lets answers in flight finish first
ENGINE_STOP_S = 30.0


class StartFailed(Exception):
    pass


@dataclasses.dataclass
class Cluster:
    settings: Settings
    engine: Child | None  # None: a remote server given with --base-url
    pages: list[Child]
    proxy: Child
    page_ports: list[int]
    scratch: Path  # the supervisor's own folder, removed when it ends
    stopping: threading.Event = dataclasses.field(default_factory=threading.Event)
    shares_core: bool = False  # the pages are clients of one engine core, started here
    core: SharedCore | None = None


def run(settings: Settings) -> int:
    """Serves until SIGINT or SIGTERM; 0 after a requested stop, 1 if a part failed,
    3 if the engine's server did not start."""
    with tempfile.TemporaryDirectory(prefix="phi4ui-proxy-") as scratch:
        cluster = plan(settings, Path(scratch))
        _on_stop_signals(cluster.stopping)
        try:
            start(cluster)
        except StartFailed as error:
            log.error("%s", error)
            stop(cluster)
            return 3 if "engine" in str(error) else 1
        log.info("Open http://%s:%d in a browser (%d page processes)", settings.host,
                 settings.port, len(cluster.pages))
        code = supervise(cluster)
        stop(cluster)
        return code


def plan(settings: Settings, scratch: Path) -> Cluster:
    proxy_binary = haproxy_binary()
    engine_port, *page_ports = _free_ports(1 + settings.frontends)
    engine = None
    base_url, api_key = settings.base_url, settings.api_key
    shares_core = settings.engine == "embedded" and settings.scale_out == "core"
    if settings.engine == "embedded" and not shares_core:  # vLLM's own server runs the model
        api_servers = settings.api_servers or settings.frontends
        engine = Child("vLLM server", vllm_server.command_for(
            settings, host="127.0.0.1", port=engine_port, api_servers=api_servers),
            nice=0 if vllm_compat.has_cuda() else ENGINE_NICE)
        base_url, api_key = f"http://127.0.0.1:{engine_port}/v1", ""
    pages = [Child(f"page process {index}", _page_command(),
                   page_environment(settings, port=port, base_url=base_url, api_key=api_key,
                                    engine="embedded" if shares_core else "remote"))
             for index, port in enumerate(page_ports, start=1)]
    config = scratch / "haproxy.cfg"
    config.write_text(config_text(settings.host, settings.port, page_ports))
    check_config(proxy_binary, config)
    proxy = Child("HAProxy", [proxy_binary, "-db", "-f", str(config)])
    return Cluster(settings, engine, pages, proxy, page_ports, scratch,
                   shares_core=shares_core)


def page_environment(settings: Settings, *, port: int, base_url: str, api_key: str,
                     engine: str = "remote") -> dict[str, str]:
    """The settings of one page process, as the environment it reads them from."""
    page = dataclasses.replace(settings, engine=engine, base_url=base_url, api_key=api_key,
                               host="127.0.0.1", port=port, frontends=1, share=False,
                               public_host=settings.host)
    return {env_name(spec.name): _as_text(getattr(page, spec.name))
            for spec in dataclasses.fields(page)}


def _as_text(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _page_command() -> list[str]:
    return [sys.executable, "-m", "phi4ui", "serve"]


def start(cluster: Cluster) -> None:
    if cluster.engine is not None:
        cluster.engine.start()
        _wait_ready(cluster, cluster.engine, _engine_url(cluster), ENGINE_START_S)
    if cluster.shares_core:  # the pages start while the core loads, to be its clients
        try:
            cluster.core = core_launch.start(cluster.settings, cluster.pages, cluster.scratch)
        except Exception as error:
            raise StartFailed(f"the engine core failed to start: {error}") from error
    else:
        for child in cluster.pages:
            child.start()
    for child, port in zip(cluster.pages, cluster.page_ports, strict=True):
        _wait_ready(cluster, child, f"http://127.0.0.1:{port}/healthz", PAGE_START_S)
    cluster.proxy.start()


def _engine_url(cluster: Cluster) -> str:
    base = cluster.pages[0].env[env_name("base_url")].removesuffix("/v1")
    return f"{base}/health"


def _wait_ready(cluster: Cluster, child: Child, url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cluster.stopping.is_set():
            raise StartFailed("stopped while starting")
        if child.exit_code() is not None:
            raise StartFailed(f"the {_role(child)} ended while starting "
                              f"(exit code {child.exit_code()}); its log is above")
        if _answers(url):
            log.info("%s is ready", child.name)
            return
        time.sleep(0.5)
    raise StartFailed(f"the {_role(child)} was not ready after {timeout_s:.0f} s")


def _role(child: Child) -> str:
    return "engine's server" if child.name == "vLLM server" else child.name


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def supervise(cluster: Cluster) -> int:
    while not cluster.stopping.wait(0.5):
        for child in (cluster.engine, cluster.proxy):
            if child is not None and child.exit_code() is not None:
                log.error("%s ended (exit code %s); stopping", child.name, child.exit_code())
                return 1
        if cluster.core is not None and (reason := cluster.core.death_reason()):
            log.error("The engine core stopped (%s); stopping", reason)
            return 1
        if not _pages_kept(cluster):
            return 1
    return 0


def _pages_kept(cluster: Cluster) -> bool:
    """Starts a page process that ended again, where it can rejoin the engine; False when
    none is left."""
    for child in list(cluster.pages):
        if child.exit_code() is None:
            continue
        if not cluster.shares_core:
            log.warning("%s ended (exit code %s); starting it again", child.name,
                        child.exit_code())
            child.start()
            continue
        log.warning("%s ended (exit code %s); a client of the engine core cannot rejoin it, "
                    "so HAProxy sends its visitors to the other page processes", child.name,
                    child.exit_code())
        cluster.pages.remove(child)
        _forget_requests_of(child)
    if not cluster.pages:
        log.error("No page process is left; stopping")
    return bool(cluster.pages)


def _forget_requests_of(page: Child) -> None:
    """The other pages count the engine idle only when no page has a request in it; a dead
    page's count would stay."""
    attachment = Attachment.from_env(page.env)
    if attachment is not None and attachment.board_path:
        forget_requests(attachment.board_path, slots=attachment.client_count,
                        index=attachment.client_index)


def stop(cluster: Cluster) -> None:
    """Pages first (their answers in flight end through the proxy), then the proxy, then
    the engine."""
    for child in cluster.pages:
        child.signal(signal.SIGTERM)
    for child in cluster.pages:
        child.stop(PAGE_STOP_S)
    cluster.proxy.stop(5.0)
    if cluster.engine is not None:
        cluster.engine.stop(ENGINE_STOP_S)
    if cluster.core is not None:
        cluster.core.shutdown(ENGINE_STOP_S)
    log.info("Stopped")


def _on_stop_signals(stopping: threading.Event) -> None:
    def handler(number: int, frame: FrameType | None) -> None:
        del number, frame
        stopping.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
