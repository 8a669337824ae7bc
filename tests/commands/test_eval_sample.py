"""The sample evaluation set in assets/eval-sample/: every case reads and every file passes
the app's media checks, and a batch of one case of each task runs end to end on the tiny
checkpoint with every task's metrics in the report. (The whole set takes minutes on
a CPU, most of it for the seven images.)"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import soundfile

from phi4ui.core.audio import PreparedAudio
from phi4ui.core.chat import Sampling
from phi4ui.core.images import PreparedImage
from phi4ui.core.media import MediaLimits, prepare
from phi4ui.evaluation.batch import BatchOptions, run_batch, write_results
from phi4ui.evaluation.cases import read_cases

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "assets" / "eval-sample" / "cases.jsonl"
TASKS = {"transcription": 4, "translation": 4, "ocr": 4, "vqa": 3}
# Each task's metrics as the batch report names them.
REPORTED = {"transcription": ("WER", "CER"), "translation": ("BLEU", "chrF"),
            "ocr": ("exact match", "ANLS"), "vqa": ("exact match", "ANLS")}
ONE_OF_EACH = ("asr-fox", "translate-fox-de", "ocr-gate", "chart-sales")
TASK_KEYS = {"transcription": ("wer", "cer"), "translation": ("bleu", "chrf"),
             "ocr": ("exact_match", "anls"), "vqa": ("exact_match", "anls")}


def test_every_sample_case_reads_and_its_files_pass_the_media_checks() -> None:
    case_file = read_cases(SAMPLE)

    assert case_file.invalid == 0 and not case_file.notes
    assert Counter(case.task for case in case_file.cases) == TASKS
    assert all(case.expected for case in case_file.cases)
    for case in case_file.cases:
        for path in case.files:
            prepared = prepare(path, MediaLimits(dynamic_hd=4))
            assert isinstance(prepared, PreparedAudio if path.endswith(".wav")
                              else PreparedImage)
            assert Path(path).is_relative_to(SAMPLE.parent)
            assert Path(path).stat().st_size < 150_000


def test_the_sample_speech_is_16_khz_mono() -> None:
    for wav in (SAMPLE.parent / "audio").glob("*.wav"):
        info = soundfile.info(wav)
        assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
        assert 1.5 < info.duration < 5.0


def one_case_of_each_task(folder: Path) -> Path:
    """The sample's cases.jsonl cut to one case of each task (each image costs seconds on
    a CPU), its media named by absolute path."""
    chosen = []
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        if case["id"] in ONE_OF_EACH:
            for field in ("image", "audio"):
                if field in case:
                    case[field] = str(SAMPLE.parent / case[field])
            chosen.append(json.dumps(case, ensure_ascii=False))
    path = folder / "cases.jsonl"
    path.write_text("\n".join(chosen) + "\n", encoding="utf-8")
    return path


@pytest.mark.engine
def test_the_sample_set_reports_every_tasks_metrics(tmp_path: Path, embedded_engine: Any,
                                                    engine_loop: Any) -> None:
    """What `python -m phi4ui batch assets/eval-sample/cases.jsonl` prints and writes, run
    in this process on the session's engine (the command itself is tested in test_cli)."""
    out = tmp_path / "report"
    case_file = read_cases(one_case_of_each_task(tmp_path))
    options = BatchOptions(sampling=Sampling(max_tokens=8))
    run = engine_loop.run(run_batch(embedded_engine, case_file, options))
    write_results(run, out)

    report = "\n".join(run.summary.lines())
    assert f"cases {len(ONE_OF_EACH)}: {len(ONE_OF_EACH)} answered, 0 errors" in report
    for task, metrics in REPORTED.items():
        for metric in metrics:
            assert re.search(rf"^{metric} .*\(95% CI .*, task {task}\)$", report, re.M), \
                (task, metric, report)
    rows = json.loads((out / "results.json").read_text())["results"]
    assert sorted(row["task"] for row in rows) == sorted(TASKS)
    for row in rows:
        assert not row["error"] and all(row[key] is not None for key in TASK_KEYS[row["task"]])
        assert row["adapter"] == ("speech" if row["audios"] else
                                  "vision" if row["images"] else None), row
        assert 0 < row["completion_tokens"] <= 8
