"""`python -m phi4ui healthcheck`: exit 0 when the app on this machine is ready to answer,
1 otherwise (for Docker's HEALTHCHECK)."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    del argv  # it takes no arguments; the port and root path come from the environment
    port = os.environ.get("PHI4UI_PORT", "7860")
    root = os.environ.get("PHI4UI_ROOT_PATH", "").rstrip("/")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{root}/healthz", timeout=4):
            return 0
    except (urllib.error.URLError, OSError) as error:
        print(f"not ready: {error}", file=sys.stderr)
        return 1

