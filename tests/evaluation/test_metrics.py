"""Task metrics on fixed pairs equal the libraries' own values, several expected answers
count as the best one (or as several references), and the task comes from the case."""

from __future__ import annotations

import json

import jiwer
import pytest
import sacrebleu
from rapidfuzz.distance import Levenshtein

from phi4ui.evaluation import metrics
from phi4ui.evaluation.batch import BatchOptions, BatchRun, CaseResult, summarize, write_results
from phi4ui.evaluation.cases import Case, read_cases
from phi4ui.evaluation.metrics import CONTAINS, resolve_task, score_case


def test_transcription_scores_are_jiwers_after_the_stated_normalisation():
    scores = score_case("transcription", "the cat sat on a mat", ["The cat, sat on the mat!"])
    assert scores.values["wer"] == jiwer.wer("the cat sat on the mat", "the cat sat on a mat")
    assert scores.values["cer"] == jiwer.cer("the cat sat on the mat", "the cat sat on a mat")
    assert scores.values["wer"] == pytest.approx(1 / 6)


def test_transcription_takes_the_best_expected_answer():
    scores = score_case("transcription", "colour me blue", ["color me blue", "colour me blue"])
    assert scores.values == {"wer": 0.0, "cer": 0.0}


def test_translation_scores_are_sacrebleus_with_every_expected_answer_as_a_reference():
    answer = "the cat is sitting on the mat"
    references = ["the cat sits on the mat", "a cat is sitting on the mat"]
    scores = score_case("translation", answer, references)
    assert scores.values["bleu"] == sacrebleu.sentence_bleu(answer, references).score
    assert scores.values["chrf"] == sacrebleu.sentence_chrf(answer, references).score
    one = score_case("translation", answer, references[:1]).values["bleu"]
    assert scores.values["bleu"] > one, "a second reference can only help"


@pytest.mark.parametrize("task", ["ocr", "vqa"])
def test_ocr_and_vqa_score_exact_match_and_anls_from_rapidfuzz(task):
    exact = score_case(task, "  Total: 42.50 ", ["total 42.50", "42.5"])
    assert exact.values["exact_match"] == 1.0
    near = score_case(task, "invoice 1234", ["Invoice 1235"])
    distance = Levenshtein.normalized_distance("invoice 1234", "invoice 1235")
    assert near.values == {"exact_match": 0.0, "anls": 1.0 - distance}
    far = score_case(task, "something else entirely", ["42"])
    assert far.values["anls"] == 0.0, "past the threshold an answer scores nothing"


def test_other_tasks_keep_the_contains_check_and_add_the_pattern():
    scores = score_case(CONTAINS, "It is a CAT.", ["dog", "cat"], pattern=r"\bCAT\b")
    assert scores.values == {"contains": 1.0, "pattern": 1.0}
    assert score_case(CONTAINS, "no", [], pattern=r"\d+").values == {"pattern": 0.0}
    assert score_case("transcription", "words", []).values == {}


def test_a_pattern_that_would_run_for_ever_counts_as_no_match(monkeypatch):
    monkeypatch.setattr(metrics, "PATTERN_TIMEOUT_S", 0.1)
    answer = "a" * 40 + "!"
    assert score_case(CONTAINS, answer, [], pattern=r"(a|aa)+$").values["pattern"] == 0.0


def test_the_task_field_wins_then_the_tags_then_the_contains_check():
    assert resolve_task("Translation", ["ocr"]) == "translation"
    assert resolve_task("", ["speech", "asr"]) == "transcription"
    assert resolve_task(None, ["vqa"]) == "vqa"
    assert resolve_task("summary", ["ocr"]) == CONTAINS
    assert resolve_task("", ["text"]) == CONTAINS


def test_case_files_carry_task_pattern_and_several_expected_answers(tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_text(
        '{"id": "a", "prompt": "Say it", "task": "VQA", "expected": ["one", "1"]}\n'
        '{"id": "b", "prompt": "Say it", "pattern": "[0-9]+", "expected": "x"}\n'
        '{"id": "c", "prompt": "Say it", "pattern": "(unclosed"}\n')
    first, second, third = read_cases(path).cases
    assert (first.task, first.expected_answers) == ("vqa", ("one", "1"))
    assert (second.pattern, second.expected_answers) == ("[0-9]+", ("x",))
    assert third.error is not None and "not a valid regular expression" in third.error


def test_a_batch_report_carries_each_metric_with_its_interval_and_normalisation(tmp_path):
    cases = [Case(i, f"line {i}", f"c{i}", "Say it", expected="one two three four",
                  tags=("speech",) if i < 3 else (), task="transcription") for i in range(1, 5)]
    answers = ["one two three four", "one two three", "one two tree four", "one two three four"]
    results = [CaseResult(case, answer=answer) for case, answer in zip(cases, answers,
                                                                        strict=True)]
    results.append(CaseResult(Case(5, "line 5", "c5", "Name it", expected="cat"), answer="A cat."))
    summary = summarize(results, wall_s=1.0)
    lines = summary.lines()
    assert "WER 12.5% (95% CI 0.0% to 25.0%; 4 cases, task transcription)" in lines
    assert any(line.startswith("WER ") and "tag speech" in line for line in lines)
    assert "WER: jiwer, after lowercasing, removing punctuation and collapsing spaces" in lines
    run = BatchRun("b1", "cases.jsonl", BatchOptions(), results, summary)
    csv_path, json_path = write_results(run, tmp_path)
    header = csv_path.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert {"task", "wer", "cer", "bleu", "anls", "contains"} <= set(header)
    document = json.loads(json_path.read_text(encoding="utf-8"))
    wer = next(m for m in document["summary"]["metrics"] if m["metric"] == "wer")
    assert wer["interval"]["count"] == 4 and wer["interval"]["estimate"] == 0.125
    assert document["results"][1]["wer"] == 0.25 and document["results"][4]["contains"] == 1.0
