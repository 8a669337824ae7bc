"""What the page processes of one shared engine core know of it, pooled in a small file they
all map: the core reports each scheduler step (KV-cache use, requests running and waiting,
adapters) to one of its clients only, and each client counts only its own answers' tokens.
Each page writes its own slot; every page reads the newest view and the summed tokens, so
each shows the whole engine, as the one-process app does.

A slot is written by its page alone; a reader that meets a write in progress (an odd or
changed sequence number) reads again.
"""

from __future__ import annotations

import mmap
import struct
import time
from pathlib import Path
from typing import NamedTuple

from phi4ui.engines.vllm_stats import SchedulerSnapshotSink

ADAPTERS = ("vision", "speech")
READ_ATTEMPTS = 100
# An answer looks at the view with every streamed chunk; reading every slot each time would
# cost a page more than the chunk itself. Reports arrive every engine step, a few ms apart.
REREAD_AFTER_S = 0.05


class _Slot(NamedTuple):
    at: float  # monotonic time of the view (one clock for every process of the host)
    kv_cache_usage: float
    running: int
    waiting: int
    vision: int  # requests running with each adapter
    speech: int
    tokens: int  # generated for this page's answers
    active: int  # this page's requests in the engine
    has_view: int


_SEQUENCE = struct.Struct("<Q")  # each slot starts with it: odd while its page writes
_VALUES = struct.Struct("<dd" + "q" * 7)
_SLOT_SIZE = _SEQUENCE.size + _VALUES.size


def create_board(path: Path, slots: int) -> None:
    """The empty file, made by the supervisor before the pages start."""
    path.write_bytes(bytes(_SLOT_SIZE * slots))


def forget_requests(path: str, *, slots: int, index: int) -> None:
    """Clears the count of requests in flight in a page's slot, once that page's process has
    ended: the other pages would otherwise never see the engine idle. The core runs a dead
    page's requests to their end; only this count goes."""
    with open(path, "r+b") as file, mmap.mmap(file.fileno(), _SLOT_SIZE * slots) as board:
        offset = index * _SLOT_SIZE
        (sequence,) = _SEQUENCE.unpack_from(board, offset)
        slot = _Slot(*_VALUES.unpack_from(board, offset + _SEQUENCE.size))
        # Odd if the page died while writing: the next even number starts a clean write.
        _write_slot(board, index, slot._replace(active=0), sequence + sequence % 2)


def _write_slot(board: mmap.mmap, index: int, slot: _Slot, sequence: int) -> int:
    """Writes a slot under its sequence number (even before, odd during, even after);
    returns the number it ends with."""
    offset = index * _SLOT_SIZE
    _SEQUENCE.pack_into(board, offset, sequence + 1)
    _VALUES.pack_into(board, offset + _SEQUENCE.size, *slot)
    _SEQUENCE.pack_into(board, offset, sequence + 2)
    return sequence + 2


class SharedBoard:
    """Reads like `SchedulerSnapshotSink`, for the whole core; `publish` writes this page's
    slot from its own sink (its stat logger's listener)."""

    def __init__(self, path: str, *, slots: int, index: int, own: SchedulerSnapshotSink
                 ) -> None:
        self._slots, self._index, self._own = slots, index, own
        with open(path, "r+b") as file:
            self._map = mmap.mmap(file.fileno(), _SLOT_SIZE * slots)
        self._sequence = 0
        self._latest: tuple[float, _Slot | None] = (-REREAD_AFTER_S, None)  # read at, report

    def publish(self, sink: SchedulerSnapshotSink) -> None:
        adapters = sink.running_adapters
        slot = _Slot(sink.updated_at or 0.0, sink.kv_cache_usage or 0.0, sink.running or 0,
                     sink.waiting or 0, adapters.get("vision", 0), adapters.get("speech", 0),
                     sink.generation_tokens_total, sink.active,
                     int(sink.updated_at is not None))
        self._sequence = _write_slot(self._map, self._index, slot, self._sequence)

    def idle(self) -> bool:
        """No page has a request in the engine. The core's last report of a step may still
        count the request that step finished."""
        return not any(slot.active for slot in self._all())

    def _read(self, index: int) -> _Slot:
        offset = index * _SLOT_SIZE
        for _ in range(READ_ATTEMPTS):
            (before,) = _SEQUENCE.unpack_from(self._map, offset)
            values = _VALUES.unpack_from(self._map, offset + _SEQUENCE.size)
            if before % 2 == 0 and _SEQUENCE.unpack_from(self._map, offset)[0] == before:
                break
            time.sleep(0)
        return _Slot(*values)

    def _all(self) -> list[_Slot]:
        return [self._read(index) for index in range(self._slots)]

    def latest_report(self) -> _Slot | None:
        """The newest scheduler report any page was given, read whole (at most
        REREAD_AFTER_S old)."""
        now = time.monotonic()
        if now - self._latest[0] < REREAD_AFTER_S:
            return self._latest[1]
        views = [slot for slot in self._all() if slot.has_view]
        self._latest = (now, max(views, key=lambda slot: slot.at) if views else None)
        return self._latest[1]

    @property
    def kv_cache_usage(self) -> float | None:
        newest = self.latest_report()
        return None if newest is None else newest.kv_cache_usage

    @property
    def running(self) -> int | None:
        newest = self.latest_report()
        return None if newest is None else newest.running

    @property
    def waiting(self) -> int | None:
        newest = self.latest_report()
        return None if newest is None else newest.waiting

    @property
    def running_adapters(self) -> dict[str, int]:
        newest = self.latest_report()
        counts = {} if newest is None else {"vision": newest.vision, "speech": newest.speech}
        return {name: count for name, count in counts.items() if count}

    @property
    def generation_tokens_total(self) -> int:
        return sum(slot.tokens for slot in self._all())

    @property
    def adapter_steps(self) -> dict[str, int]:
        return dict(self._own.adapter_steps)  # the steps this page was told of

    def close(self) -> None:
        self._map.close()
