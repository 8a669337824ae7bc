"""`serve`: what the app sets up in its own process before it serves."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest

import phi4ui.engines
import phi4ui.web.server
from phi4ui.commands import serve


@pytest.mark.parametrize(("flags", "interval_s"), [([], 0.001),
                                                    (["--thread-switch-ms", "0.5"], 0.0005)])
def test_the_app_shortens_pythons_thread_switch_interval_before_it_serves(
        monkeypatch: pytest.MonkeyPatch, flags: list[str], interval_s: float) -> None:
    """A worker thread holds Python's lock at most this long while the event loop waits for
    it (Python's default is 5 ms); set before the engine and the page are built."""
    seen: list[float] = []

    def engine(settings: Any) -> Any:
        seen.append(sys.getswitchinterval())
        return SimpleNamespace(stopping=lambda: None)

    monkeypatch.setattr(phi4ui.engines, "build_engine", engine)
    monkeypatch.setattr(phi4ui.web.server, "build_server", lambda settings, engine: object())
    monkeypatch.setattr(serve, "_serve", lambda server, settings, on_signal: seen.append(
        sys.getswitchinterval()))
    before = sys.getswitchinterval()
    try:
        assert serve.main(flags) == 0
    finally:
        sys.setswitchinterval(before)
    assert seen == [pytest.approx(interval_s)] * 2
