"""`python -m phi4ui serve [flags]` (or `python app.py`): the app, until SIGINT or SIGTERM.
`--help` lists every setting."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from phi4ui.errors import SettingsError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from phi4ui.settings import Settings

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# After SIGINT or SIGTERM, and after the answers in flight have ended, connections get
# this long to close before they are cut.
GRACE_FOR_CONNECTIONS_S = 3
# How long an idle keep-alive connection stays open. Uvicorn's default, 5 s, equals the
# idle limit of common clients (httpx's keep-alive expiry is 5 s too): a request sent on a
# connection just as the server closes it fails ("Server disconnected without sending a
# response", ReadError), and when the loop was held, the server's close timers fire after
# the stall, ahead of requests that arrived during it. A server that waits longer than its
# clients is never the one to close an idle connection under them.
KEEP_ALIVE_S = 75


def main(argv: Sequence[str] | None = None) -> int:
    from phi4ui.settings import load_settings

    try:
        settings = load_settings(None if argv is None else list(argv))
    except SettingsError as error:
        print(f"phi4ui: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpx2"):  # one line per HTTP call, /metrics scrapes included
        logging.getLogger(chatty).setLevel(logging.WARNING)
    logging.getLogger("phi4ui").info("Settings: %s", settings.redacted())
    if settings.frontends > 1:
        return _serve_scaled_out(settings)

    from phi4ui.engines import build_engine
    from phi4ui.web.server import build_server

    # Every syscall the serving loop makes (Gradio checks each file of a chat on every
    # update) gives up Python's lock; behind a busy worker thread, getting it back takes up
    # to one switch interval each time.
    sys.setswitchinterval(settings.thread_switch_ms / 1000)
    engine = build_engine(settings)
    server = build_server(settings, engine)
    logging.getLogger("phi4ui").info("Open http://%s:%d in a browser", settings.host,
                                     settings.port)
    _serve(server, settings, on_signal=engine.stopping)
    logging.getLogger("phi4ui").info("Stopped")
    return 0


def _serve_scaled_out(settings: Settings) -> int:
    from phi4ui.scaleout import cluster

    try:
        return cluster.run(settings)
    except SettingsError as error:
        print(f"phi4ui: {error}", file=sys.stderr)
        return 2


def _serve(server: FastAPI, settings: Settings, on_signal: Callable[[], None]) -> None:
    """Serves until SIGINT or SIGTERM (calling `on_signal` at once), then stops cleanly:
    answers in flight end, the engine stops, and the process exits with code 0."""
    import uvicorn

    from phi4ui.web.server import stop_serving

    class CleanExitServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            # Uvicorn raises the signal again after its shutdown, so that the process ends
            # as killed by it (exit code 130 or 143); a requested stop ends with code 0.
            self._captured_signals.clear()
            on_signal()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await stop_serving(server)
            await super().shutdown(sockets)

    config = uvicorn.Config(server, host=settings.host, port=settings.port,
                            log_level=settings.log_level,
                            timeout_graceful_shutdown=GRACE_FOR_CONNECTIONS_S,
                            timeout_keep_alive=KEEP_ALIVE_S)
    CleanExitServer(config).run()

