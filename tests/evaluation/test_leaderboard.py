"""The leaderboard: Bradley–Terry on votes drawn from known strengths finds their order and
its intervals hold them; votes come from a real SQLite store, each once; thumbs count only
as the module says; and the command line prints and writes it."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from phi4ui.commands.common import Exit
from phi4ui.evaluation.leaderboard import ELO_SCALE, Vote, leaderboard, votes_in
from phi4ui.evaluation.store import Store
from tests.support.votes import answer_by, label_of, seed_votes

ROOT = Path(__file__).resolve().parents[2]
TRUE_STRENGTHS = {"weak": -1.0, "fair": -0.2, "good": 0.4, "best": 0.8}  # natural log


@pytest.fixture()
def store(tmp_path: Path):
    store = Store(tmp_path / "answers.db")
    yield store
    store.close()


def drawn_votes(strengths: dict[str, float], count: int, seed: int) -> list[Vote]:
    rng = random.Random(seed)
    names = sorted(strengths)
    votes = []
    for _ in range(count):
        a, b = rng.sample(names, 2)
        a_wins = rng.random() < 1 / (1 + math.exp(strengths[b] - strengths[a]))
        votes.append(Vote(a, b, 1.0 if a_wins else 0.0))
    return votes


def elo_of(strengths: dict[str, float]) -> dict[str, float]:
    mean = sum(strengths.values()) / len(strengths)
    return {name: 1000 + ELO_SCALE * (value - mean) for name, value in strengths.items()}


# ---------------------------------------------------------------- the fit

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_known_strengths_come_out_in_order_inside_their_intervals(seed: int) -> None:
    board = leaderboard(drawn_votes(TRUE_STRENGTHS, 1500, seed), resamples=200, seed=seed)

    assert [s.label for s in board.standings] == ["best", "good", "fair", "weak"]
    truth = elo_of(TRUE_STRENGTHS)
    for standing in board.standings:
        assert standing.low <= truth[standing.label] <= standing.high, standing
        assert standing.low < standing.score < standing.high
    assert sum(s.votes for s in board.standings) == 2 * 1500 == 2 * board.votes


def test_fewer_votes_give_wider_intervals() -> None:
    many = leaderboard(drawn_votes(TRUE_STRENGTHS, 2000, 5))
    few = leaderboard(drawn_votes(TRUE_STRENGTHS, 100, 5))
    for name in TRUE_STRENGTHS:
        wide = next(s for s in few.standings if s.label == name)
        narrow = next(s for s in many.standings if s.label == name)
        assert wide.high - wide.low > 2 * (narrow.high - narrow.low)


def test_ties_count_half_and_a_clean_sweep_stays_finite() -> None:
    votes = [Vote("a", "b", 0.5)] * 6 + [Vote("c", "d", 1.0)] * 5
    board = leaderboard(votes, resamples=50)
    score = {s.label: s for s in board.standings}

    assert score["a"].score == pytest.approx(score["b"].score, abs=1e-6)
    assert (score["a"].wins, score["a"].losses, score["a"].ties) == (0, 0, 6)
    assert (score["d"].wins, score["d"].losses, score["d"].ties) == (0, 5, 0)
    assert score["c"].score > score["d"].score
    assert all(math.isfinite(s.score) and math.isfinite(s.low) for s in board.standings)


def test_votes_within_one_configuration_are_left_out() -> None:
    board = leaderboard([Vote("a", "a", 1.0), Vote("a", "b", 1.0)], resamples=10)
    assert board.votes == 1 and board.same_configuration == 1
    assert [s.label for s in board.standings] == ["a", "b"]
    assert "1 votes between answers of one configuration left out" in board.summary()


def test_no_votes_is_an_empty_board_that_says_so() -> None:
    board = leaderboard([])
    assert board.standings == () and "No votes yet" in board.lines()[0]


# ---------------------------------------------------------------- from the store

def test_each_stored_vote_is_read_once_with_its_configurations(store: Store) -> None:
    left = store.add_answer(answer_by(0.1, "Which is better?")).answer_id
    right = store.add_answer(answer_by(0.7, "Which is better?")).answer_id
    store.vote(left, right, "right")
    store.rate(left, 1)  # a thumb with no counterpart: not a vote

    votes = votes_in(store)
    assert len(votes) == 1
    vote = votes[0]
    winner = vote.first if vote.outcome == 1.0 else vote.second
    assert winner == label_of(store, right)
    assert "temperature 0.7" in winner and "system “Be brief.”" in winner
    assert "adapter none" in winner and "max 16 tokens" in winner


def test_votes_drawn_in_the_store_rank_its_configurations(store: Store) -> None:
    labels = seed_votes(store, [0.0, 1.5, -1.5], 150)
    board = leaderboard(votes_in(store))
    assert [s.label for s in board.standings] == [labels[0.2], labels[0.1], labels[0.3]]
    assert board.votes == 150


def test_opposite_thumbs_on_one_question_count_only_when_asked(store: Store) -> None:
    up = store.add_answer(answer_by(0.1, "Same question?")).answer_id
    down = store.add_answer(answer_by(0.9, "Same question?")).answer_id
    also_up = store.add_answer(answer_by(0.5, "Same question?")).answer_id
    elsewhere = store.add_answer(answer_by(0.9, "Another question?")).answer_id
    for answer_id, score in ((up, 1), (down, -1), (also_up, 1), (elsewhere, -1)):
        store.rate(answer_id, score)

    assert votes_in(store) == []
    votes = votes_in(store, thumbs=True)
    # up over down, also_up over down; up and also_up agree, elsewhere has no counterpart.
    assert len(votes) == 2 and all(v.source == "thumbs" for v in votes)
    losers = {v.second if v.outcome == 1.0 else v.first for v in votes}
    assert losers == {label_of(store, down)}


# ---------------------------------------------------------------- the command line

def leaderboard_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phi4ui", "leaderboard", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_command_prints_and_writes_the_board(store: Store, tmp_path: Path) -> None:
    labels = seed_votes(store, [1.5, -1.5], 40)
    out = tmp_path / "board.json"

    result = leaderboard_command("--db", str(store.path), "--json", str(out),
                                 "--resamples", "50")
    assert result.returncode == Exit.OK, result.stderr
    lines = result.stdout.splitlines()
    assert labels[0.1] in lines[1] and labels[0.2] in lines[2]
    assert "40 votes between 2 configurations" in result.stdout
    written = json.loads(out.read_text())
    assert [s["label"] for s in written["standings"]] == [labels[0.1], labels[0.2]]
    assert written["standings"][0]["votes"] == 40 and written["resamples"] == 50


def test_the_command_refuses_a_missing_database(tmp_path: Path) -> None:
    result = leaderboard_command("--db", str(tmp_path / "none.db"))
    assert result.returncode == Exit.BAD_INPUT
    assert "no database at" in result.stderr and "Traceback" not in result.stderr
