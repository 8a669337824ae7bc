"""Forgetting the pages nobody uses any more.

Gradio keeps, for every session id it has seen, a copy of the whole page's configuration
(291 KiB of the process's memory for this page, measured over 10,000 sessions) with that
page's current values, the chat included, and the session's `gr.State` values, such as its
conversation. It frees the state of a page whose heartbeat ended after an hour, but the rest
only once 10,000 sessions have been seen: memory that grew with every page ever opened, and
that anyone could fill (2.8 GB) by sending requests with made-up session ids.

An open page asks for the live figures every few seconds (a browser may slow a hidden tab to
once a minute), so a session unused for longer than the idle limit, an hour by default,
belongs to a page that is gone or asleep, as Gradio itself assumes of a page whose heartbeat
ended an hour ago. Its state is handed to Gradio's own delete callbacks and the session
is dropped. The number of sessions kept is capped as well: past the cap, Gradio drops the
least recently used one.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gradio.state_holder import StateHolder

log = logging.getLogger(__name__)


def idle_sessions(holder: StateHolder, idle: datetime.timedelta,
                  now: datetime.datetime | None = None) -> list[str]:
    """The sessions last used more than `idle` ago. One Gradio made but never marked as
    used counts as used now: it is new."""
    now = now or datetime.datetime.now()
    with holder.lock:  # Gradio's, held while it adds or evicts a session
        return [session_id for session_id in list(holder.session_data)
                if holder.time_last_used.setdefault(session_id, now) < now - idle]


def forget_sessions(holder: StateHolder, session_ids: Iterable[str], idle: datetime.timedelta,
                    now: datetime.datetime | None = None) -> int:
    """Drops those of `session_ids` that are still idle; returns how many."""
    now = now or datetime.datetime.now()
    forgotten = 0
    with holder.lock:
        for session_id in session_ids:
            last_used = holder.time_last_used.get(session_id)
            if last_used is None or last_used >= now - idle:
                continue  # gone already, or used again since
            holder.delete_state(session_id)  # the states' own delete callbacks
            del holder.session_data[session_id]
            del holder.time_last_used[session_id]
            forgotten += 1
    return forgotten


# Freeing a session takes about 0.1 ms (10,000 at once held the event loop that serves every
# page for 1 s, measured): a batch at a time, with the loop free in between (6 ms at most).
BATCH = 50


class SessionReaper:
    """Forgets the idle sessions now and then, on the event loop. Looking for idle
    sessions costs about 1.5 µs each (15 ms for 10,000 sessions, measured)."""

    def __init__(self, holder: StateHolder, idle_minutes: float) -> None:
        self.holder = holder
        self.idle = datetime.timedelta(minutes=idle_minutes)
        self.every_s = min(60.0, max(1.0, self.idle.total_seconds() / 4))
        self.forgotten = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            forgotten = await self.sweep()
            if forgotten:
                log.info("Forgot %d page sessions idle for over %s (%d kept)", forgotten,
                         self.idle, len(self.holder.session_data))

    async def sweep(self) -> int:
        forgotten = 0
        idle_ids = idle_sessions(self.holder, self.idle)
        for start in range(0, len(idle_ids), BATCH):
            await asyncio.sleep(0)
            forgotten += forget_sessions(self.holder, idle_ids[start:start + BATCH], self.idle)
        self.forgotten += forgotten
        return forgotten
