"""The one interface both engines offer; the page only ever sees this."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from phi4ui.core.chat import ChatRequest, PromptLimits
from phi4ui.core.media import MediaLimits
from phi4ui.core.stats import EngineSnapshot, RequestStats
from phi4ui.settings import REAL_DYNAMIC_HD

# "restarting": the embedded engine died and is being started again in the background.
State = Literal["loading", "ready", "restarting", "failed"]


@dataclass(frozen=True)
class EngineInfo:
    """What the engine serves, for the page's header and settings panel."""

    kind: str  # "embedded" or "remote"
    model: str
    revision: str = ""
    max_model_len: int = 0
    max_images: int = 0
    max_audios: int = 0
    dynamic_hd: int = REAL_DYNAMIC_HD
    dynamic_hd_source: str = ""  # where the value came from, e.g. measured on the server
    adapters: dict[str, str] = field(default_factory=dict)
    random_weights: bool = False
    device: str = ""
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class TextDelta:
    text: str
    tokens: int
    last: bool = False  # the answer's text is complete; only its statistics are to come


@dataclass(frozen=True)
class Finished:
    stats: RequestStats
    # The token ids the model was given, when the engine reports them (the embedded engine
    # always does; a remote one when asked to): what reached the model, for checks.
    prompt_token_ids: tuple[int, ...] | None = None


Event = TextDelta | Finished


@dataclass
class Status:
    """Where the engine is in its life; `message` explains a failure."""

    state: State = "loading"
    message: str = "starting"
    since: float = field(default_factory=time.monotonic)

    def set(self, state: State, message: str) -> None:
        self.state, self.message, self.since = state, message, time.monotonic()


class Engine(Protocol):
    status: Status

    @property
    def info(self) -> EngineInfo: ...

    @property
    def media_limits(self) -> MediaLimits: ...

    @property
    def prompt_limits(self) -> PromptLimits:
        """Media and context limits, and the `TextGuard` made from the engine's tokenizer."""

    async def start(self) -> None:
        """Loads or connects; sets `status`. Never raises: a failure lands in `status`."""

    async def watch(self) -> None:
        """After `start`, until cancelled: notices when the engine dies or its server goes
        away, and brings it back (a restart, a new connection), updating `status`."""

    def count_text_tokens(self, text: str) -> int: ...

    def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Text deltas as they come, then one `Finished`. Closing the iterator early
        aborts the request in the engine. Raises `EngineUnavailable` or `BadInput`."""

    async def snapshot(self) -> EngineSnapshot: ...

    def stopping(self) -> None:
        """The app was asked to stop (a signal): nothing is restarted or reconnected from
        now on. Sets a flag only, so a signal handler may call it."""

    async def close(self) -> None:
        """Ends the answers in flight and frees the engine; the app is stopping."""
