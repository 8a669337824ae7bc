"""A leaderboard of configurations from Compare votes: a Bradley–Terry fit, with a
bootstrap 95% interval over the votes and each configuration's vote count.

A configuration is what produced an answer, as recorded: the engine (kind, model,
revision), the adapter the answer used (Compare's "auto" shows as the adapter the planner
chose for that input), the sampling settings and the system prompt. A vote between two
answers of the same configuration says nothing about the ranking and is left out.

Bradley–Terry gives each configuration a strength p, and the chance that one answer is
preferred to another is p_a / (p_a + p_b); a tie counts as half a win for each. The
strengths are fitted by maximum likelihood (Newton's method); every configuration also meets a fixed
reference of strength 1 once, with a tie, which keeps the fit finite for a configuration
that won or lost every vote (and shrinks it a little towards the middle). Scores are shown
on the Elo scale: 400·log10(p), shifted so that their mean is 1000; 100 points apart means
the higher one is preferred about 64% of the time.

Thumbs, when asked for: two answers to the same conversation (the same texts and the same
media, turn by turn) by different configurations, one rated up and the other down, count
as one vote for the one rated up. Two equal thumbs say both are acceptable (or not), not
which is better, so they are left out.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from phi4ui.evaluation.rows import AnswerRow, Rating, from_row
from phi4ui.evaluation.store import AnswerRecord, Store

ELO_SCALE = 400 / np.log(10)
ELO_MIDDLE = 1000.0
DEFAULT_RESAMPLES = 200
MAX_ITERATIONS = 100
MAX_STEP = 2.0  # in log strength: Newton's first steps are kept short
TOLERANCE = 1e-10
SYSTEM_SHOWN = 40


@dataclass(frozen=True)
class Vote:
    """One preference between the answers of two configurations (by label)."""

    first: str
    second: str
    outcome: float  # 1: first better, 0: second better, 0.5: a tie
    source: str = "vote"  # or "thumbs"


@dataclass(frozen=True)
class Standing:
    label: str
    score: float  # Elo scale, mean 1000
    low: float  # the bootstrap 95% interval of the score
    high: float
    votes: int
    wins: int
    losses: int
    ties: int


@dataclass(frozen=True)
class Leaderboard:
    standings: tuple[Standing, ...]  # best first
    votes: int  # the votes fitted, thumbs pairs included
    from_thumbs: int
    same_configuration: int  # votes left out: both answers by one configuration
    resamples: int

    def lines(self) -> list[str]:
        if not self.standings:
            return [NO_VOTES] + ([self.summary()] if self.same_configuration else [])
        rows = [f"{rank:>2}. {s.score:7.1f}  [{s.low:7.1f}, {s.high:7.1f}]  "
                f"{s.votes:>4} votes ({s.wins}-{s.losses}-{s.ties})  {s.label}"
                for rank, s in enumerate(self.standings, 1)]
        return ["rank  score  95% interval        votes (won-lost-tied)  configuration",
                *rows, self.summary()]

    def summary(self) -> str:
        thumbs = f", {self.from_thumbs} of them from thumbs" if self.from_thumbs else ""
        return (f"{self.votes} votes{thumbs} between {len(self.standings)} configurations; "
                f"{self.same_configuration} votes between answers of one configuration left "
                f"out; intervals from {self.resamples} resamples of the votes.")

    def as_dict(self) -> dict[str, Any]:
        return {"standings": [asdict(s) for s in self.standings], "votes": self.votes,
                "from_thumbs": self.from_thumbs, "same_configuration": self.same_configuration,
                "resamples": self.resamples}


NO_VOTES = ("No votes yet: vote in Compare (side by side) for the better answer, and the "
            "configurations are ranked here.")


# ---------------------------------------------------------------- the fit

def leaderboard(votes: Sequence[Vote], *, resamples: int = DEFAULT_RESAMPLES,
                seed: int = 0) -> Leaderboard:
    """The configurations ranked by their Bradley–Terry scores, with bootstrap intervals
    (the votes resampled with replacement, `resamples` times, from `seed`)."""
    counted = [v for v in votes if v.first != v.second]
    same_configuration = len(votes) - len(counted)
    labels = sorted({v.first for v in counted} | {v.second for v in counted})
    if not labels:
        return Leaderboard((), 0, 0, same_configuration, resamples)
    index = {label: i for i, label in enumerate(labels)}
    games = _Games.of([(index[v.first], index[v.second], v.outcome) for v in counted])
    scores = elo_scores(games, len(labels), games.counts[None, :])[0]
    low, high = _intervals(games, len(labels), resamples, seed)
    standings = [_standing(label, i, scores, low, high, counted) for label, i in index.items()]
    standings.sort(key=lambda s: (-s.score, s.label))
    return Leaderboard(tuple(standings), len(counted),
                       sum(v.source == "thumbs" for v in counted), same_configuration,
                       resamples)


@dataclass(frozen=True)
class _Games:
    """The votes grouped by (first, second, outcome): each kind once, with its count."""

    first: np.ndarray
    second: np.ndarray
    outcome: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, votes: Sequence[tuple[int, int, float]]) -> _Games:
        kinds, counts = np.unique(np.array(votes, dtype=float), axis=0, return_counts=True)
        return cls(kinds[:, 0].astype(int), kinds[:, 1].astype(int), kinds[:, 2],
                   counts.astype(float))


def elo_scores(games: _Games, count: int, weights: np.ndarray) -> np.ndarray:
    """Each configuration's score on the Elo scale, mean `ELO_MIDDLE`, for each row of
    `weights` (how often each kind of game counts in one resample)."""
    wins = np.zeros((count, count, len(weights)))
    np.add.at(wins, (games.first, games.second), (weights * games.outcome).T)
    np.add.at(wins, (games.second, games.first), (weights * (1.0 - games.outcome)).T)
    log_strength = _log_strengths(wins.transpose(2, 0, 1))
    return ELO_MIDDLE + ELO_SCALE * (log_strength - log_strength.mean(axis=1, keepdims=True))


def _log_strengths(wins: np.ndarray) -> np.ndarray:
    """The Bradley–Terry log strengths that make `wins` most likely, by Newton's method on
    the log-likelihood (concave; the reference tie makes it strictly so), for a stack of
    win matrices at once: `wins[k, i, j]` is how often i beat j in resample k (ties half)."""
    games = wins + wins.transpose(0, 2, 1)
    won = wins.sum(axis=2) + 0.5  # the reference tie's half win
    theta = np.zeros(wins.shape[:2])
    for _ in range(MAX_ITERATIONS):
        preferred = _sigmoid(theta[:, :, None] - theta[:, None, :])
        versus_reference = _sigmoid(theta)
        gradient = won - (games * preferred).sum(axis=2) - versus_reference
        curvature = games * preferred * (1 - preferred)
        hessian = curvature - _diagonal(curvature.sum(axis=2)
                                        + versus_reference * (1 - versus_reference))
        step = np.linalg.solve(-hessian, gradient[:, :, None])[:, :, 0]
        step *= np.minimum(1.0, MAX_STEP / np.abs(step).max(axis=1, keepdims=True).clip(1e-300))
        theta += step
        if np.abs(step).max() < TOLERANCE:
            break
    return theta


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _diagonal(values: np.ndarray) -> np.ndarray:
    """A stack of diagonal matrices from a stack of vectors."""
    return values[:, :, None] * np.eye(values.shape[1])[None, :, :]


def _intervals(games: _Games, count: int, resamples: int,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Percentiles over resamples of the votes with replacement: a multinomial draw of how
    often each kind of game comes up, the same as drawing the votes one by one."""
    if resamples < 1:
        nothing = np.full(count, np.nan)
        return nothing, nothing
    total = int(games.counts.sum())
    weights = np.random.default_rng(seed).multinomial(total, games.counts / total,
                                                      size=resamples).astype(float)
    low, high = np.percentile(elo_scores(games, count, weights), [2.5, 97.5], axis=0)
    return low, high


def _standing(label: str, i: int, scores: np.ndarray, low: np.ndarray, high: np.ndarray,
              votes: Sequence[Vote]) -> Standing:
    outcomes = [v.outcome if v.first == label else 1.0 - v.outcome
                for v in votes if label in (v.first, v.second)]
    return Standing(label, float(scores[i]), float(low[i]), float(high[i]), len(outcomes),
                    wins=sum(o == 1.0 for o in outcomes), losses=sum(o == 0.0 for o in outcomes),
                    ties=sum(o == 0.5 for o in outcomes))


# ---------------------------------------------------------------- configurations

def configuration_label(answer: AnswerRow | AnswerRecord) -> str:
    """A stable, readable name for what produced `answer`; different settings, different
    names."""
    kind, model = answer.engine.get("kind", ""), answer.engine.get("model", "")
    revision = answer.engine.get("revision") or ""
    engine = f"{kind} · {model}" + (f" @ {revision}" if revision else "")
    sampling = answer.sampling
    parts = [engine, f"adapter {answer.adapter or 'none'}",
             f"temperature {_number(sampling.get('temperature'))}",
             f"top-p {_number(sampling.get('top_p'))}",
             f"max {sampling.get('max_tokens')} tokens"]
    if sampling.get("seed") is not None:
        parts.append(f"seed {sampling['seed']}")
    if sampling.get("ignore_eos"):
        parts.append("ignore EOS")
    parts.append(_system_label(answer.system))
    return " · ".join(parts)


def _number(value: Any) -> str:
    return f"{float(value):g}" if isinstance(value, int | float) else str(value)


def _system_label(system: str) -> str:
    flat = " ".join(system.split())
    if not flat:
        return "no system prompt"
    if flat == system and len(flat) <= SYSTEM_SHOWN:
        return f"system “{flat}”"
    # Shortened, or its spacing flattened: the digest tells such system prompts apart.
    digest = hashlib.sha256(system.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    shown = flat if len(flat) <= SYSTEM_SHOWN else flat[:SYSTEM_SHOWN - 1] + "…"
    return f"system “{shown}” #{digest}"


# ---------------------------------------------------------------- reading the store

def votes_in(store: Store, *, thumbs: bool = False) -> list[Vote]:
    """The Compare votes of the store (each once), and with `thumbs` the pairs of thumbs
    described in the module's docstring. Reads through its own read-only connection."""
    uri = store.path.resolve().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        answers = {row["id"]: from_row(AnswerRow, row) for row in conn.execute(
            "SELECT * FROM answers WHERE id IN (SELECT answer_id FROM ratings "
            "WHERE versus_id != '' OR score != 0)")}
        ratings = [from_row(Rating, row) for row in conn.execute(
            "SELECT * FROM ratings ORDER BY answer_id, versus_id")]
    labels = {answer_id: configuration_label(row) for answer_id, row in answers.items()}
    found = list(_compare_votes(ratings, labels))
    if thumbs:
        found += _thumbs_votes(ratings, answers, labels)
    return found


def _compare_votes(ratings: Iterable[Rating], labels: dict[str, str]) -> Iterable[Vote]:
    """A vote is stored as a rating on each answer; the one on the smaller id is read."""
    for rating in ratings:
        if (rating.versus_id and rating.answer_id < rating.versus_id
                and rating.answer_id in labels and rating.versus_id in labels):
            yield Vote(labels[rating.answer_id], labels[rating.versus_id],
                       (rating.score + 1) / 2)


def _thumbs_votes(ratings: Iterable[Rating], answers: dict[str, AnswerRow],
                  labels: dict[str, str]) -> list[Vote]:
    by_conversation: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for rating in ratings:
        if not rating.versus_id and rating.score and rating.answer_id in answers:
            key = json.dumps(answers[rating.answer_id].turns, sort_keys=True)
            by_conversation[key].append((rating.answer_id, rating.score))
    votes = []
    for rated in by_conversation.values():
        for (a, a_score), (b, b_score) in itertools.combinations(sorted(rated), 2):
            if a_score != b_score and labels[a] != labels[b]:
                votes.append(Vote(labels[a], labels[b], 1.0 if a_score > b_score else 0.0,
                                  source="thumbs"))
    return votes
