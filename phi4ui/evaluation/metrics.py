"""Per-case task metrics, each computed by a well-kept library, chosen by the case's task.

    score_case(task, answer, expected, pattern) -> CaseScores

`task` is what `resolve_task(case.task, case.tags)` chose:

    transcription  WER and CER (jiwer), the best over the expected answers
    translation    BLEU and chrF (sacrebleu, sentence level), the expected answers as
                   references together
    ocr, vqa       exact match and ANLS (rapidfuzz's normalised Levenshtein distance),
                   the best over the expected answers
    contains       whether an expected answer occurs in the answer (case and spacing
                   ignored), as before

and a case with a `pattern` also gets `pattern`: whether the regular expression
matches somewhere in the answer. A failed case, or a case without expected
answers, gets no task metric. `NORMALISATION` says, in the words of the report,
how each metric treats the text.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jiwer
import regex
import sacrebleu
from rapidfuzz.distance import Levenshtein

TASKS = ("transcription", "translation", "ocr", "vqa")
CONTAINS = "contains"
TAG_TASKS = {"transcription": "transcription", "asr": "transcription",
             "translation": "translation", "ocr": "ocr", "vqa": "vqa"}
PATTERN_TIMEOUT_S = 1.0  # a pattern from an uploaded file must not hold the server
ANLS_THRESHOLD = 0.5  # DocVQA's: an answer further than this from every reference scores 0


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    lower_is_better: bool = False
    percent: bool = True  # a fraction, shown as a percentage; else shown as it is (BLEU)

    def shown(self, value: float | None) -> str:
        if value is None:
            return "–"
        return f"{value * 100:.1f}%" if self.percent else f"{value:.1f}"


METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("wer", "WER", lower_is_better=True), Metric("cer", "CER", lower_is_better=True),
    Metric("bleu", "BLEU", percent=False), Metric("chrf", "chrF", percent=False),
    Metric("exact_match", "exact match"), Metric("anls", "ANLS"),
    Metric("contains", "expected found"), Metric("pattern", "pattern matched"),
)}
TASK_METRICS = {"transcription": ("wer", "cer"), "translation": ("bleu", "chrf"),
                "ocr": ("exact_match", "anls"), "vqa": ("exact_match", "anls"),
                CONTAINS: ("contains",)}
NORMALISATION = {
    "wer": "jiwer, after lowercasing, removing punctuation and collapsing spaces",
    "cer": "jiwer, after lowercasing, removing punctuation and collapsing spaces",
    "bleu": f"sacrebleu {sacrebleu.__version__} sentence BLEU, tokenizer 13a, exp "
            "smoothing, effective order; mean over cases",
    "chrf": f"sacrebleu {sacrebleu.__version__} sentence chrF (character 6-grams, beta 2); "
            "mean over cases",
    "exact_match": "after lowercasing, removing punctuation and collapsing spaces",
    "anls": "1 - normalised Levenshtein distance (rapidfuzz) after lowercasing and "
            f"collapsing spaces, 0 at a distance of {ANLS_THRESHOLD} or more",
    "contains": "an expected answer occurs in the answer, case and spacing ignored",
    "pattern": "the case's regular expression matches somewhere in the answer",
}
_WORDS = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(),
                        jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
                        jiwer.ReduceToListOfListOfWords()])
_CHARS = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(),
                        jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
                        jiwer.ReduceToListOfListOfChars()])
_PUNCTUATION = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True)
class CaseScores:
    task: str  # one of TASKS or CONTAINS
    values: dict[str, float] = field(default_factory=dict)  # metric name -> value

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, **self.values}


def resolve_task(task: str | None, tags: Sequence[str] = ()) -> str:
    """The case's `task` when it names one of TASKS; else the first tag that does; else
    `contains`."""
    chosen = (task or "").strip().lower()
    if chosen in TASKS:
        return chosen
    if chosen:
        return CONTAINS
    return next((TAG_TASKS[tag] for tag in tags if tag in TAG_TASKS), CONTAINS)


def check_pattern(pattern: str) -> str:
    """`pattern` if it compiles; raises ValueError saying why not."""
    try:
        regex.compile(pattern)
    except regex.error as error:
        raise ValueError(f"'pattern' is not a valid regular expression ({error})") from None
    return pattern


def score_case(task: str, answer: str, expected: Sequence[str],
               pattern: str | None = None) -> CaseScores:
    """The metrics of one answered case (`task` as `resolve_task` gives it)."""
    references = [text for text in expected if text.strip()]
    values = _task_scores(task, answer, references) if references else {}
    if pattern:
        values["pattern"] = pattern_matches(pattern, answer)
    return CaseScores(task, values)


def _task_scores(task: str, answer: str, references: list[str]) -> dict[str, float]:
    if task == "transcription":
        return {"wer": min(word_error_rate(ref, answer) for ref in references),
                "cer": min(char_error_rate(ref, answer) for ref in references)}
    if task == "translation":
        return {"bleu": sacrebleu.sentence_bleu(answer, references).score,
                "chrf": sacrebleu.sentence_chrf(answer, references).score}
    if task in ("ocr", "vqa"):
        return {"exact_match": max(exact_match(ref, answer) for ref in references),
                "anls": max(anls(ref, answer) for ref in references)}
    return {"contains": float(any(_spaced(ref) in _spaced(answer) for ref in references))}


def word_error_rate(reference: str, answer: str) -> float:
    return float(jiwer.wer(reference, answer, reference_transform=_WORDS,
                           hypothesis_transform=_WORDS))


def char_error_rate(reference: str, answer: str) -> float:
    return float(jiwer.cer(reference, answer, reference_transform=_CHARS,
                           hypothesis_transform=_CHARS))


def exact_match(reference: str, answer: str) -> float:
    return float(_plain(reference) == _plain(answer))


def anls(reference: str, answer: str) -> float:
    distance = Levenshtein.normalized_distance(_spaced(reference), _spaced(answer))
    return 0.0 if distance >= ANLS_THRESHOLD else 1.0 - distance


def pattern_matches(pattern: str, answer: str) -> float:
    """1.0 when `pattern` matches; a pattern that runs past its time limit counts as no
    match rather than holding the run."""
    try:
        return float(regex.search(pattern, answer, timeout=PATTERN_TIMEOUT_S) is not None)
    except (regex.error, TimeoutError):
        return 0.0


def _spaced(text: str) -> str:
    return " ".join(text.casefold().split())


def _plain(text: str) -> str:
    return " ".join(text.casefold().translate(_PUNCTUATION).split())
