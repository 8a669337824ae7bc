"""An ASGI app served by uvicorn on 127.0.0.1 in a thread of the test process, so that a
test can reach the app's objects (its heap, its Gradio state) while talking HTTP to it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from bench.procs import free_port


@dataclass(frozen=True)
class ThreadedServer:
    url: str
    loop: asyncio.AbstractEventLoop  # the server's: hand it work with call_soon_threadsafe


@contextlib.contextmanager
def served_in_thread(app: Any, ready: Callable[[str], bool] = lambda url: True,
                     timeout_s: float = 60) -> Iterator[ThreadedServer]:
    """Serves `app` until the block ends; waits until uvicorn listens and `ready(url)`."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    loops: list[asyncio.AbstractEventLoop] = []

    def run() -> None:  # as `server.run()` does, on the loop uvicorn picks (uvloop)
        with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
            loops.append(runner.get_loop())
            runner.run(server.serve())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while not (server.started and ready(url)):
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield ThreadedServer(url, loops[0])
    finally:
        server.should_exit = True
        thread.join(30)
