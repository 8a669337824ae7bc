"""What one browser session has seen so far: answers, mean time to first token and
mean decode speed. Immutable, so it can live in a `gr.State` and be replaced."""

from __future__ import annotations

from dataclasses import dataclass, replace

from phi4ui.core import figures
from phi4ui.core.stats import RequestStats


@dataclass(frozen=True)
class SessionSummary:
    answers: int = 0
    completion_tokens: int = 0
    ttft_sum_s: float = 0.0
    ttft_count: int = 0
    rate_sum: float = 0.0
    rate_count: int = 0

    def add(self, stats: RequestStats) -> SessionSummary:
        summary = replace(self, answers=self.answers + 1,
                          completion_tokens=self.completion_tokens + stats.completion_tokens)
        if stats.ttft_s is not None:
            summary = replace(summary, ttft_sum_s=summary.ttft_sum_s + stats.ttft_s,
                              ttft_count=summary.ttft_count + 1)
        if stats.decode_tokens_per_s is not None:
            summary = replace(summary, rate_sum=summary.rate_sum + stats.decode_tokens_per_s,
                              rate_count=summary.rate_count + 1)
        return summary

    @property
    def mean_ttft_s(self) -> float | None:
        return self.ttft_sum_s / self.ttft_count if self.ttft_count else None

    @property
    def mean_tokens_per_s(self) -> float | None:
        return self.rate_sum / self.rate_count if self.rate_count else None

    def text(self) -> str:
        if not self.answers:
            return "This session: no answers yet."
        pieces = [f"{self.answers} answer{'s' if self.answers != 1 else ''}"]
        if (ttft := self.mean_ttft_s) is not None:
            pieces.append(f"mean first token {figures.seconds(ttft)}")
        if (rate := self.mean_tokens_per_s) is not None:
            pieces.append(f"mean {rate:.1f} tok/s")
        pieces.append(f"{self.completion_tokens} tokens generated")
        return "This session: " + " · ".join(pieces)
