"""Forgetting the pages nobody uses any more, and keeping a new page's state small.

Gradio keeps, for every session id it has seen, that page's current values, the chat
included, and the session's `gr.State` values, such as its conversation; Gradio's own
session also held a copy of the whole page's configuration (291 KiB for this page, made on
the event loop; now made block by block when needed, see `build_session_configs_on_demand`).
It frees the state of a page whose heartbeat ended after an hour, but the rest only once
10,000 sessions have been seen: memory that grew with every page ever opened, and that
anyone could fill (2.8 GB) by sending requests with made-up session ids.

An open page asks for the live figures every few seconds (a browser may slow a hidden tab to
once a minute), so a session unused for longer than the idle limit, an hour by default,
belongs to a page that is gone or asleep, as Gradio itself assumes of a page whose heartbeat
ended an hour ago. Its state is handed to Gradio's own delete callbacks and the session
is dropped. The number of sessions kept is capped as well: past the cap, Gradio drops the
least recently used one.

A closed page is let go sooner. Each open page holds its heartbeat stream open for its
whole life (a hidden tab's too; the browser reopens it after a dropped connection); a session
whose heartbeat ended, with none open since and no request for `--closed-page-minutes`,
belongs to a page that was closed. Kept for the full idle limit, such sessions piled up: in
the 10-minute soak (300 pages opened) 301 were kept at its end, and every full garbage
collection walks what they hold (see `docs/benchmarks.md`).

A page that was asleep that long and comes back still shows its chat, but the server has
let the conversation go: the first message sent from it is refused once with the reason,
so that nobody is answered by a model that no longer sees the messages above.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import types
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from gradio.state_holder import SessionState

from phi4ui.core.untracked import untrack_table

if TYPE_CHECKING:
    from gradio.blocks import Blocks
    from gradio.state_holder import StateHolder

log = logging.getLogger(__name__)


class OpenPages:
    """The sessions whose page holds its heartbeat stream open now (`LeanStreams` serves
    those streams and counts them here)."""

    def __init__(self) -> None:
        self._streams: Counter[str] = Counter()

    @contextlib.contextmanager
    def heartbeat(self, session_id: str) -> Iterator[None]:
        self._streams[session_id] += 1
        try:
            yield
        finally:
            self._streams[session_id] -= 1
            if self._streams[session_id] <= 0:
                del self._streams[session_id]

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._streams


def idle_sessions(holder: StateHolder, idle: datetime.timedelta,
                  now: datetime.datetime | None = None) -> list[str]:
    """The sessions last used more than `idle` ago. One Gradio made but never marked as
    used counts as used now: it is new."""
    now = now or datetime.datetime.now()
    with holder.lock:  # Gradio's, held while it adds or evicts a session
        return [session_id for session_id in list(holder.session_data)
                if holder.time_last_used.setdefault(session_id, now) < now - idle]


def closed_sessions(holder: StateHolder, open_pages: OpenPages, grace: datetime.timedelta,
                    now: datetime.datetime | None = None) -> list[str]:
    """The sessions of closed pages: the heartbeat ended (Gradio marks the session closed
    then, for good), none is open now, and nothing was asked for `grace`."""
    now = now or datetime.datetime.now()
    with holder.lock:
        return [session_id for session_id, state in list(holder.session_data.items())
                if state.is_closed and session_id not in open_pages
                and holder.time_last_used.setdefault(session_id, now) < now - grace]


def forget_sessions(holder: StateHolder, session_ids: Iterable[str], idle: datetime.timedelta,
                    now: datetime.datetime | None = None) -> list[str]:
    """Drops those of `session_ids` that are still idle; returns their ids."""
    now = now or datetime.datetime.now()
    forgotten = []
    with holder.lock:
        for session_id in session_ids:
            last_used = holder.time_last_used.get(session_id)
            if last_used is None or last_used >= now - idle:
                continue  # gone already, or used again since
            holder.delete_state(session_id)  # the states' own delete callbacks
            del holder.session_data[session_id]
            del holder.time_last_used[session_id]
            forgotten.append(session_id)
    return forgotten


def unused_for(minutes: float) -> str:
    return f"This page was not used for over {_duration(minutes)}"


def closed_for(minutes: float) -> str:
    return f"This page was closed, or lost its connection, for over {_duration(minutes)}"


class ForgottenSessions:
    """The ids of the sessions forgotten, the latest `cap` of them (about 100 bytes each),
    with why (`unused_for`, `closed_for`), so that a page that comes back can be told why
    its conversation is gone. Each is told once."""

    def __init__(self, cap: int = 10_000) -> None:
        self.cap = cap
        self._ids: OrderedDict[str, str] = OrderedDict()

    def add(self, session_ids: Iterable[str], why: str) -> None:
        for session_id in session_ids:
            self._ids[session_id] = why
        while len(self._ids) > self.cap:
            self._ids.popitem(last=False)

    def notice(self, session_id: str | None) -> str | None:
        """Why this session starts empty, the first time it is asked; otherwise None."""
        why = None if session_id is None else self._ids.pop(session_id, None)
        if why is None:
            return None
        return (f"{why}, so the server let its conversation go: the model would not see the "
                "messages above. Send again to start a new conversation with your message, "
                "or reload the page.")


def _duration(minutes: float) -> str:
    if minutes >= 120 and minutes % 60 == 0:
        return f"{minutes // 60:.0f} hours"
    if minutes >= 1:
        return f"{minutes:.0f} minute{'s' if round(minutes) != 1 else ''}"
    return f"{minutes * 60:.0f} seconds"


# Freeing a session takes about 0.1 ms (10,000 at once held the event loop that serves every
# page for 1 s, measured): a batch at a time, with the loop free in between (6 ms at most).
BATCH = 50


class SessionReaper:
    """Forgets the idle sessions, and those of closed pages (with `open_pages`), now and
    then, on the event loop. Looking for idle sessions costs about 1.5 µs each (15 ms for
    10,000 sessions, measured)."""

    def __init__(self, holder: StateHolder, idle_minutes: float,
                 forgotten: ForgottenSessions | None = None, *,
                 open_pages: OpenPages | None = None, closed_minutes: float = 10.0) -> None:
        self.holder = holder
        self.idle_minutes, self.closed_minutes = idle_minutes, closed_minutes
        self.idle = datetime.timedelta(minutes=idle_minutes)
        self.grace = datetime.timedelta(minutes=closed_minutes)
        self.open_pages = open_pages
        self.forgotten_ids = forgotten or ForgottenSessions()
        shortest = min(self.idle, self.grace) if open_pages is not None else self.idle
        self.every_s = min(60.0, max(1.0, shortest.total_seconds() / 4))
        self.forgotten = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            forgotten = await self.sweep()
            if forgotten:
                log.info("Forgot %d page sessions, idle or closed (%d kept)", forgotten,
                         len(self.holder.session_data))

    async def sweep(self) -> int:
        forgotten = await self._forget(idle_sessions(self.holder, self.idle), self.idle,
                                       unused_for(self.idle_minutes))
        if self.open_pages is not None:
            closed = closed_sessions(self.holder, self.open_pages, self.grace)
            forgotten += await self._forget(closed, self.grace,
                                            closed_for(self.closed_minutes))
        self.forgotten += forgotten
        return forgotten

    async def _forget(self, session_ids: list[str], unused: datetime.timedelta, why: str
                      ) -> int:
        forgotten = 0
        for start in range(0, len(session_ids), BATCH):
            await asyncio.sleep(0)
            batch = forget_sessions(self.holder, session_ids[start:start + BATCH], unused)
            self.forgotten_ids.add(batch, why)
            forgotten += len(batch)
        return forgotten


# ---------------------------------------------------------------- a new session's state

def keep_no_session_configs() -> None:
    """Works around: Gradio's session keeps a copy of every block's configuration
    (`SessionState.config_values`) and writes each event's values into it, all for one
    reader, its deep-link route, which this app removes (see `server._drop_deep_links`).
    Made in full in the first request that names a new session, the copy held the event
    loop for 181-243 ms in the 2-core soak and took most of a session's 291 KiB. Made
    block by block, the copies were still about one object in seven that each of Python's
    full garbage collections walked under load (64 people: 63,000 objects on average, 54,000
    without them), and those collections stall every page. Now a session keeps none."""
    if getattr(SessionState.__init__, "keeps_no_configs", False):
        return
    made_by_gradio = SessionState.__init__

    def __init__(self: SessionState, blocks: Blocks) -> None:
        # Gradio's own constructor, given no blocks to copy the configuration of
        made_by_gradio(self, types.SimpleNamespace(  # type: ignore[arg-type]
            default_config=blocks.default_config, blocks={}))
        self.config_values = _NoConfigs()
        # Gradio's own shallow copies of the page's block and event tables, hundreds of
        # entries each, pointing at the page: a session's largest part of every full walk.
        untrack_table(self.blocks_config.blocks)
        untrack_table(self.blocks_config.fns)

    __init__.keeps_no_configs = True  # type: ignore[attr-defined]
    __init__.__wrapped__ = made_by_gradio  # type: ignore[attr-defined]
    SessionState.__init__ = __init__  # type: ignore[method-assign]


class _NoConfigs(dict[int, dict[str, Any]]):
    """Stands in for a session's copies of the blocks' configurations. Gradio asks with
    `in` whether a block has one (any block: the Runs tab's are not in the page's own
    list), then sets `[key]["props"]["value"]`, or stores a new copy with `[key] =`: every
    block seems to have one, each is a scratch dict, and nothing is stored. Empty to
    anything that lists them."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: int) -> dict[str, Any]:
        return {"props": {}}

    def __setitem__(self, key: int, value: dict[str, Any]) -> None:
        pass
