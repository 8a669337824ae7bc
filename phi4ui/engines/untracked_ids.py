"""Token-id lists taken out of the garbage collector's walks.

The embedded engine's front end keeps each answer's prompt as a list of token ids (vLLM's
`RequestState` and every `RequestOutput` share one list) for as long as the answer runs:
thousands of ints per answer with an image or a long conversation. A full collection walks
every reference in every tracked container, and its walk is what stalled the event loop past
100 ms on 2 cores; under the soak's load lists held a third or more of those references,
these the largest of them. Untracked, the references walked fell by about a quarter; an
effect on the stalls is not shown (docs/benchmarks.md).

A list that holds only objects the collector does not track (ints among them) cannot be
part of a reference cycle, so the collector has nothing to find in it. CPython untracks
tuples and dicts of such items by itself, but never lists; `PyObject_GC_UnTrack` (the C
API's call, which a list's own deallocation makes too, and which does nothing to an object
already untracked) does it here. The list is still freed by its reference count as before.
"""

from __future__ import annotations

import ctypes
import gc
from typing import Any

_untrack = ctypes.pythonapi.PyObject_GC_UnTrack
_untrack.argtypes = [ctypes.py_object]
_untrack.restype = None


def untrack_token_ids(ids: Any) -> bool:
    """Stops the collector from walking `ids` when it is a list of ints (of untracked
    objects). Returns whether it did. Anything else (a tuple, None, a list holding a
    container) is left alone. About 80 µs for 3,000 ids on a slow core."""
    if type(ids) is not list or not gc.is_tracked(ids):
        return False
    if any(map(gc.is_tracked, ids)):
        return False
    _untrack(ids)
    return True
