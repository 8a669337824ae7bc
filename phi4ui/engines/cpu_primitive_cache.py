"""A smaller cache of oneDNN's compiled matrix products for vLLM's engine processes on the CPU.

vLLM's CPU backend multiplies through oneDNN, which builds a primitive for each input shape
it meets and keeps up to 1,024 of them (`ONEDNN_PRIMITIVE_CACHE_CAPACITY`). The number of
tokens in a step is part of the shape, so the engine's memory grew for minutes as steps of
new sizes came, and looked like a leak: with vLLM's `LLM` in one process on the tiny
checkpoint (2 cores), 300 prompts of distinct lengths added 290 MiB and the next 100
nothing; with a cache of 16 the same prompts added 10 MiB. Four rounds of 64 prompts of
random lengths took as long with 16, 256 or 1,024 entries (one run each). A value the
deployment sets is kept.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, MutableMapping

VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
CAPACITY = 256


@contextlib.contextmanager
def smaller_cache_for_new_processes(environ: MutableMapping[str, str] = os.environ
                                    ) -> Iterator[str]:
    """The capacity for the processes started within (the deployment's own, if it set one);
    this process's environment as it was after. Returns the capacity they get."""
    before = environ.get(VARIABLE)
    if before is not None:
        yield before
        return
    environ[VARIABLE] = str(CAPACITY)
    try:
        yield environ[VARIABLE]
    finally:
        environ.pop(VARIABLE, None)
