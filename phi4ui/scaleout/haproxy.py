"""HAProxy's configuration for the front ends: one public address, visitors spread
round-robin and kept on their page process by a cookie (a page's conversation and its
streaming answer live in one process), and a process that fails its health check
taken out until it answers again."""

from __future__ import annotations

import resource
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from phi4ui.errors import SettingsError

STICKY_COOKIE = "phi4ui-frontend"
# A streamed answer or an idle page's event stream may stay open for a long time.
LONG_STREAM_S = 3600


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or next(
        (path for path in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")
         if Path(path).exists()), None)
    if found is None:
        raise SettingsError("--frontends: needs HAProxy (Debian: apt-get install haproxy)")
    return found


def check_config(binary: str, config: Path) -> None:
    """HAProxy's own check of a configuration file; raises `SettingsError` with its
    complaint (e.g. an address it cannot use)."""
    result = subprocess.run([binary, "-c", "-q", "-f", str(config)], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise SettingsError(f"--frontends: HAProxy refuses its configuration: "
                            f"{(result.stderr or result.stdout).strip()[:500]}")


def max_connections() -> int:
    """As many as HAProxy can hold within this process's file limit: two files each, and
    some for its listeners, servers and checks (it refuses to start when they do not fit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else soft
    return max(256, min(20_000, (limit - 1000) // 2))


def config_text(host: str, port: int, frontend_ports: Sequence[int]) -> str:
    servers = "\n".join(
        f"    server page{index} 127.0.0.1:{backend} cookie page{index} check"
        for index, backend in enumerate(frontend_ports, start=1))
    return f"""global
    maxconn {max_connections()}
    log stderr format short local0 warning

defaults
    mode http
    log global
    option httplog
    option dontlognull
    # Pass each small write on at once: without it a streamed answer's chunks wait for
    # more data or the peer's delayed ACK, about 200 ms at a time (measured through
    # this configuration: 219 ms largest gap between chunks sent 5 ms apart, 9 ms with it).
    option http-no-delay
    timeout connect 5s
    timeout client {LONG_STREAM_S}s
    timeout server {LONG_STREAM_S}s
    timeout tunnel {LONG_STREAM_S}s
    timeout http-request 30s
    # A page process that has just died is not yet marked down: a request that cannot
    # connect to it is tried again on another one. While a killed process is still ending,
    # its port accepts connections that then close without an answer (empty-response);
    # such a request never reached the app, so it is tried again too.
    retries 2
    option redispatch
    retry-on conn-failure empty-response

frontend pages
    bind {_bind_address(host)}:{port}
    default_backend phi4ui

backend phi4ui
    balance roundrobin
    cookie {STICKY_COOKIE} insert indirect nocache httponly attr "SameSite=Lax"
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 2s fall 2 rise 1
{servers}
"""


def _bind_address(host: str) -> str:
    return f"[{host}]" if ":" in host else host
