"""The generation settings a person picks in the side panel, with Phi-4-MM's defaults.

Values come from the browser (sliders, or settings remembered in its local
storage), so every one is checked and clamped here before it reaches a request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from phi4ui.core.chat import Sampling
from phi4ui.core.conversation import checked_text

DEFAULT_SYSTEM = "You are a helpful assistant."
TEMPERATURE_RANGE = (0.0, 2.0)
TOP_P_RANGE = (0.05, 1.0)
SLIDER_STEP = 0.05  # temperature and top-p
MIN_NEW_TOKENS = 16
NEW_TOKENS_STEP = 16
CARD_MAX_NEW_TOKENS = 1000  # max_new_tokens in the model card's examples
SYSTEM_MAX_CHARS = 4000
SEED_MAX = 2**31 - 1
PHI4MM_SAMPLING = Sampling()
DEFAULT_MAX_TOKENS = PHI4MM_SAMPLING.max_tokens


@dataclass(frozen=True)
class GenerationSettings:
    """Starts from `Sampling`'s defaults, Phi-4-MM's own."""

    system: str = DEFAULT_SYSTEM
    temperature: float = PHI4MM_SAMPLING.temperature
    top_p: float = PHI4MM_SAMPLING.top_p
    max_tokens: int = DEFAULT_MAX_TOKENS
    seed: int | None = None

    @classmethod
    def checked(cls, system: Any, temperature: Any, top_p: Any, max_tokens: Any, seed: Any,
                max_tokens_limit: int) -> GenerationSettings:
        """Settings from untrusted values; a value that is missing or unusable falls back to
        its default, a number out of range is clamped."""
        default = cls()
        limit = max(MIN_NEW_TOKENS, max_tokens_limit)
        return cls(
            system=checked_text(system[:SYSTEM_MAX_CHARS]) if isinstance(system, str)
            else default.system,
            temperature=_clamp(_number(temperature, default.temperature), *TEMPERATURE_RANGE),
            top_p=_clamp(_number(top_p, default.top_p), *TOP_P_RANGE),
            max_tokens=int(_clamp(_number(max_tokens, min(default.max_tokens, limit)),
                                  MIN_NEW_TOKENS, limit)),
            seed=_seed(seed),
        )

    @classmethod
    def card_greedy(cls, max_tokens_limit: int) -> GenerationSettings:
        """The model card's examples: no system prompt, greedy, up to 1,000 new tokens."""
        return cls.checked("", 0.0, 1.0, CARD_MAX_NEW_TOKENS, None, max_tokens_limit)

    @classmethod
    def from_stored(cls, stored: Any, max_tokens_limit: int) -> GenerationSettings:
        values = stored if isinstance(stored, Mapping) else {}
        default = cls()
        return cls.checked(values.get("system", default.system),
                           values.get("temperature"), values.get("top_p"),
                           values.get("max_tokens"), values.get("seed"), max_tokens_limit)

    def stored(self) -> dict[str, Any]:
        return asdict(self)

    def sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, top_p=self.top_p,
                        max_tokens=self.max_tokens, seed=self.seed)


def _number(value: Any, fallback: float) -> float:
    if isinstance(value, bool):
        return fallback
    try:
        number = float(value)
    except (TypeError, ValueError):
        return fallback
    return number if math.isfinite(number) else fallback


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _seed(value: Any) -> int | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    number = _number(value, -1.0)
    if number < 0 or number != int(number):
        return None
    return int(min(number, SEED_MAX))
