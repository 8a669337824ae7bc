"""A smaller cache of oneDNN's compiled matrix products for vLLM's engine processes on the CPU.

vLLM's CPU backend multiplies through oneDNN, which builds a primitive for each input shape
it meets and keeps up to 1,024 of them (`ONEDNN_PRIMITIVE_CACHE_CAPACITY`). The number of
tokens in a step is part of the shape, so the engine's memory grew for minutes as steps of
new sizes came, and looked like a leak: with vLLM's `LLM` in one process on the tiny
checkpoint (2 cores, `python -m bench.engine_memory`), 300 prompts of distinct lengths added
290 MiB and the next 100 nothing; with 256 entries they added 50 MiB. The price: rounds of
64 prompts of random lengths answered together took 15.3 s on average with 256 entries and
14.0 s with 1,024 (three runs each; one setting's runs averaged 13.0 to 15.2 s). In the
10-minute soak the engine's memory grew 1.96% with 256, 5.3% before. A value the
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
