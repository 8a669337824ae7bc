"""The embedded engine's restarts after a death are bounded: a pause before each, and after
the last one the engine stays failed with the reason. No vLLM: loading is replaced."""

from __future__ import annotations

import asyncio

from phi4ui.engines import embedded
from phi4ui.engines.embedded import EmbeddedEngine
from phi4ui.settings import load_settings

KILLED = "the engine process was killed by SIGKILL"


def test_restarts_are_bounded_then_the_engine_stays_failed(monkeypatch):
    monkeypatch.setattr(embedded, "RESTART_DELAYS_S", (0.0, 0.01, 0.02))
    engine = EmbeddedEngine(load_settings(["--model", "some/model"], environ={}))
    attempts: list[str] = []

    async def failing_load() -> None:
        attempts.append(f"{engine.status.state}: {engine.status.message}")
        raise RuntimeError("not enough memory")

    monkeypatch.setattr(engine, "_load", failing_load)
    asyncio.run(engine._recover(KILLED))

    assert attempts == [
        f"restarting: {KILLED}; restart 1 of 3",
        "restarting: restarting the engine failed: not enough memory; restart 2 of 3",
        "restarting: restarting the engine failed: not enough memory; restart 3 of 3",
    ]
    assert engine.status.state == "failed"
    assert engine.status.message == ("restarting the engine failed: not enough memory, and it "
                                      "was restarted 3 times in a row already; restart the app")


def test_a_restart_that_works_makes_the_engine_ready(monkeypatch):
    monkeypatch.setattr(embedded, "RESTART_DELAYS_S", (0.0,))
    engine = EmbeddedEngine(load_settings(["--model", "some/model"], environ={}))

    async def load() -> None:
        pass

    monkeypatch.setattr(engine, "_load", load)
    asyncio.run(engine._recover(KILLED))
    assert engine.status.state == "ready"
    # A second death soon after counts on: no restart is left.
    asyncio.run(engine._recover(KILLED))
    assert engine.status.state == "failed" and "restart the app" in engine.status.message
