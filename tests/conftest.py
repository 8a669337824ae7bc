"""Shared fixtures: the tiny random-weight checkpoint and a real embedded engine.

The engine lives on an event loop in a background thread for the whole session,
as it does in the app (where the loop is the web server's); tests hand it
coroutines with `engine_loop.run(...)`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

T = TypeVar("T")
TEST_DYNAMIC_HD = 4


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from phi4ui.tinymodel import TINY, ensure_checkpoint

    cache = Path(os.environ.get("PHI4UI_TEST_CACHE", tmp_path_factory.mktemp("checkpoints")))
    return ensure_checkpoint(cache, TINY, dynamic_hd=TEST_DYNAMIC_HD)


@pytest.fixture(scope="session")
def engine_loop() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.stop()


@pytest.fixture(scope="session")
def engine_settings(checkpoint: Path) -> Any:
    from phi4ui.settings import load_settings

    return load_settings(["--model", str(checkpoint), "--max-model-len", "4096",
                          "--max-images", "2", "--max-audios", "2", "--max-num-seqs", "16",
                          "--cpu-kv-cache-gib", "1"], environ={})


@pytest.fixture(scope="session")
def embedded_engine(engine_settings: Any, engine_loop: LoopThread) -> Iterator[Any]:
    from phi4ui.engines.embedded import EmbeddedEngine

    engine = EmbeddedEngine(engine_settings)
    engine_loop.run(engine.start())
    assert engine.status.state == "ready", engine.status.message
    yield engine
    engine_loop.run(engine.close())


@pytest.fixture(scope="session")
def launched_vllm_server(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
                         ) -> Iterator[Any]:
    """The shared server's process, started but not waited for (see `vllm_server`)."""
    from tests.support.vllm_server import STREAM_INTERVAL, VllmServer

    server = VllmServer(checkpoint, tmp_path_factory.mktemp("vllm") / "server.log",
                        dynamic_hd=None, extra=["--stream-interval", str(STREAM_INTERVAL)])
    server.launch()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vllm_server(launched_vllm_server: Any) -> Any:
    """One real vLLM OpenAI server on 127.0.0.1 for every test that needs a server but not
    one of its own: each start costs more than a minute on 2 cores. Started as the model
    card starts the real model (the image tiling comes from the checkpoint), and sending
    several tokens per chunk (the first at once), as `--stream-interval` makes a server
    under load send them, so every test on it also checks that chunks of any size count
    right."""
    launched_vllm_server.wait_ready()
    return launched_vllm_server


@pytest.fixture(scope="session", autouse=True)
def _shared_server_starts_early(request: pytest.FixtureRequest) -> None:
    """When a selected test uses the shared server, it starts as the session does, in the
    background and below the tests on the CPU: its start is mostly one process importing
    vLLM, which the tests before its first use leave a core for."""
    if any("vllm_server" in item.fixturenames for item in request.session.items):
        request.getfixturevalue("launched_vllm_server")


@pytest.fixture()
def killable_vllm_server(vllm_server: Any) -> Iterator[Any]:
    """The shared server, for a test that kills it: started again after the test if the
    test did not, so that a failure cannot take the server from the tests after it."""
    yield vllm_server
    if not vllm_server.answers():
        vllm_server.start()
