"""Compare votes written straight into a store: answers by configurations that differ in
temperature, and votes drawn from known Bradley–Terry strengths with a fixed seed."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence

from phi4ui.evaluation.leaderboard import configuration_label
from phi4ui.evaluation.store import AnswerRecord, Store
from tests.support.evalhelpers import record_for


def answer_by(temperature: float, question: str) -> AnswerRecord:
    """An answer to `question` by the configuration with this temperature."""
    record = record_for(question)
    return dataclasses.replace(record, sampling={**record.sampling, "temperature": temperature})


def label_of(store: Store, answer_id: str) -> str:
    """The leaderboard's name for the configuration of a stored answer."""
    return configuration_label(store.answer(answer_id))


def seed_votes(store: Store, strengths: Sequence[float], votes: int, *,
               seed: int = 7) -> dict[float, str]:
    """`votes` side-by-side votes between configurations of temperature 0.1, 0.2, … whose
    natural-log Bradley–Terry strengths are `strengths`; returns each temperature's label."""
    rng = random.Random(seed)
    temperatures = [round(0.1 * (i + 1), 1) for i in range(len(strengths))]
    labels: dict[float, str] = {}
    for number in range(votes):
        left, right = rng.sample(range(len(strengths)), 2)
        question = f"Question {number}?"
        ids = []
        for side in (left, right):
            ids.append(store.add_answer(answer_by(temperatures[side], question)).answer_id)
            labels.setdefault(temperatures[side], label_of(store, ids[-1]))
        left_wins = rng.random() < 1 / (1 + math.exp(strengths[right] - strengths[left]))
        store.vote(ids[0], ids[1], "left" if left_wins else "right")
    return labels
