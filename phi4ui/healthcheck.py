"""Exit 0 when the app on this machine is ready to answer, 1 otherwise (for HEALTHCHECK)."""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("PHI4UI_PORT", "7860")
    root = os.environ.get("PHI4UI_ROOT_PATH", "").rstrip("/")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{root}/healthz", timeout=4):
            return 0
    except (urllib.error.URLError, OSError) as error:
        print(f"not ready: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
