"""Start phi4ui: `python app.py --help` lists every setting."""

import logging
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def main(argv: list[str] | None = None) -> int:
    from phi4ui.errors import SettingsError
    from phi4ui.settings import load_settings

    try:
        settings = load_settings(argv)
    except SettingsError as error:
        print(f"phi4ui: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpx2"):  # one line per HTTP call, /metrics scrapes included
        logging.getLogger(chatty).setLevel(logging.WARNING)
    logging.getLogger("phi4ui").info("Settings: %s", settings.redacted())

    import uvicorn

    from phi4ui.engines import build_engine
    from phi4ui.server import build_server

    server = build_server(settings, build_engine(settings))
    logging.getLogger("phi4ui").info("Open http://%s:%d in a browser", settings.host,
                                     settings.port)
    uvicorn.run(server, host=settings.host, port=settings.port,
                log_level=settings.log_level, timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
