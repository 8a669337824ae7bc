"""The engines behind `phi4ui.core.engine.Engine`: vLLM embedded in this process (`AsyncLLM`)
and a remote OpenAI-compatible server, with what each needs (model files, the wire format,
Prometheus figures, calibration, the real-model check).

May import: vLLM, the OpenAI client, `phi4ui.core`, `phi4ui.tinymodel`, `phi4ui.errors`,
`phi4ui.settings` and itself. Never Gradio, the page, the web app or the evaluation record.
"""

import os

from phi4ui.core.engine import Engine
from phi4ui.settings import Settings


def build_engine(settings: Settings) -> Engine:
    if settings.engine == "remote":
        from phi4ui.engines.remote import RemoteEngine

        return RemoteEngine(settings)
    from phi4ui.engines.embedded import EmbeddedEngine
    from phi4ui.engines.shared_core import Attachment

    return EmbeddedEngine(settings, attachment=Attachment.from_env(os.environ))
