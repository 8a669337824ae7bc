"""A batch run's task metrics summed up: for each task, each tag and (for a metric that
several tasks share) the whole run, every metric's mean with a bootstrap 95% interval and
the number of cases behind it.

    summarize_metrics([(scores, tags), ...]) -> (MetricLine, ...)
    metric_lines(lines) -> the report's sentences, ending with how each metric
                           normalised the text
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from phi4ui.evaluation.intervals import Interval, bootstrap_ci
from phi4ui.evaluation.metrics import METRICS, NORMALISATION, CaseScores

ALL = "all cases"


@dataclass(frozen=True)
class MetricLine:
    scope: str  # ALL, "task transcription" or "tag speech"
    metric: str  # a key of METRICS
    interval: Interval

    def sentence(self) -> str:
        metric, found = METRICS[self.metric], self.interval
        return (f"{metric.label} {metric.shown(found.estimate)} (95% CI "
                f"{metric.shown(found.low)} to {metric.shown(found.high)}; {found.count} "
                f"{'case' if found.count == 1 else 'cases'}, {self.scope})")


def summarize_metrics(scored: Iterable[tuple[CaseScores, Sequence[str]]],
                      *, seed: int = 0) -> tuple[MetricLine, ...]:
    """Every metric by task; over all cases where it comes from several tasks (a
    pattern); and by each tag that covers only some of the metric's cases."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for scores, tags in scored:
        for metric, value in scores.values.items():
            groups[(ALL, metric)].append(value)
            groups[(f"task {scores.task}", metric)].append(value)
            for tag in tags:
                groups[(f"tag {tag}", metric)].append(value)
    order = list(METRICS)
    wanted = sorted((key for key in groups if _worth_showing(key, groups)),
                    key=lambda key: (_scope_rank(key[0]), key[0], order.index(key[1])))
    return tuple(MetricLine(scope, metric, bootstrap_ci(groups[(scope, metric)], seed=seed))
                 for scope, metric in wanted)


def _worth_showing(key: tuple[str, str], groups: dict[tuple[str, str], list[float]]) -> bool:
    """A line that says something the others do not."""
    scope, metric = key
    everything = len(groups[(ALL, metric)])
    if scope == ALL:
        return sum(1 for s, m in groups if m == metric and s.startswith("task ")) > 1
    return scope.startswith("task ") or len(groups[key]) < everything


def _scope_rank(scope: str) -> int:
    return 0 if scope == ALL else 1 if scope.startswith("task ") else 2


def metric_lines(lines: Sequence[MetricLine]) -> list[str]:
    """The report's metric sentences and, once per metric shown, its normalisation."""
    shown = list(dict.fromkeys(line.metric for line in lines))
    return ([line.sentence() for line in lines]
            + [f"{METRICS[name].label}: {NORMALISATION[name]}" for name in shown])
