"""Engines: one protocol (`base.Engine`), an embedded vLLM and a remote server."""

from phi4ui.engines.base import Engine
from phi4ui.settings import Settings


def build_engine(settings: Settings) -> Engine:
    if settings.engine == "remote":
        from phi4ui.engines.remote import RemoteEngine

        return RemoteEngine(settings)
    from phi4ui.engines.embedded import EmbeddedEngine

    return EmbeddedEngine(settings)
