"""Containers taken out of the garbage collector's walks.

Every full collection walks every reference of every tracked container made since the
start-up freeze, and under load that walk is what stalls the event loop, and so every page,
past 100 ms on 2 cores (docs/benchmarks.md). Some large containers live for a whole answer or
a whole session yet can never be part of a reference cycle; the collector finds nothing in
them, so they are taken out of its walks:

- an answer's prompt as a list of token ids, thousands of ints with an image or a long
  conversation, which the embedded engine's front end keeps from the request's arrival to its
  end;
- a session's copies of the page's block and event tables (Gradio's `SessionState`), a few
  hundred entries each, all pointing at the page's own blocks.

CPython untracks tuples and dicts of untracked items by itself, never lists, and never a dict
that holds a container. `PyObject_GC_UnTrack` (the C API's call, which a list's or a dict's
own deallocation makes too, and which does nothing to an object already untracked) does it
here. Each is still freed by its reference count as before.
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
    objects): such a list cannot be in a cycle. Returns whether it did. Anything else (a
    tuple, None, a list holding a container) is left alone. About 80 µs for 3,000 ids on a
    slow core."""
    if type(ids) is not list or not gc.is_tracked(ids):
        return False
    if any(map(gc.is_tracked, ids)):
        return False
    _untrack(ids)
    return True


def untrack_table(table: Any) -> bool:
    """Stops the collector from walking `table`, a dict whose keys and values never refer
    back to it (the caller's promise: here, a session's copy of the page's tables, which
    point at the page). Returns whether it did; anything but a tracked dict is left alone.
    CPython tracks the dict again by itself as soon as a container is stored in it, so what
    is added later is walked as before."""
    if type(table) is not dict or not gc.is_tracked(table):
        return False
    _untrack(table)
    return True
