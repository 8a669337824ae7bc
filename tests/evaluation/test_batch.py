"""Batch evaluation: case files checked per file and per case, a mixed batch on the real
tiny engine, its table, summary and downloads, and a run killed half-way that keeps
the cases it finished."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from phi4ui.commands import batch as batch_command
from phi4ui.core.chat import Sampling
from phi4ui.core.conversation import MAX_MESSAGE_CHARS
from phi4ui.evaluation import batch
from phi4ui.evaluation.batch import BatchOptions, CaseResult
from phi4ui.evaluation.cases import (
    PAGE_MAX_CASES,
    Case,
    CaseFile,
    CaseFileError,
    read_cases,
    stage_upload,
)
from phi4ui.evaluation.store import Store
from tests.support.mediafiles import write_image
from tests.support.process_groups import remove_when_gone, shared_memory_of

ROOT = Path(__file__).resolve().parents[2]


def write_jsonl(path: Path, items: list) -> Path:
    path.write_text("\n".join(i if isinstance(i, str) else json.dumps(i) for i in items) + "\n")
    return path


# ---------------------------------------------------------------- killed half-way
# First in this file so that, run alone, it starts its engine before the shared one.

@pytest.mark.engine
def test_a_batch_killed_half_way_keeps_the_cases_it_finished(tmp_path, checkpoint):
    cases = write_jsonl(tmp_path / "cases.jsonl",
                        [{"id": f"c{i}", "prompt": f"Question number {i}?"} for i in range(300)])
    db = tmp_path / "answers.db"
    command = [sys.executable, "-m", "phi4ui", "batch", str(cases), "--out", str(tmp_path / "out"),
               "--concurrency", "2", "--max-tokens", "64", "--ignore-eos",
               "--model", str(checkpoint), "--max-model-len", "4096", "--max-num-seqs", "16",
               "--cpu-kv-cache-gib", "1", "--db-path", str(db), "--log-level", "warning"]
    log = (tmp_path / "batch.log").open("w")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               env=env, start_new_session=True)
    shared: set[Path] = set()
    try:
        finished_before_kill = _wait_for_cases(db, process, at_least=5, log=tmp_path / "batch.log")
        shared = shared_memory_of(process.pid)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
    finally:
        _kill_group(process)
        remove_when_gone(process.pid, shared)  # what the killed engine left in /dev/shm

    store = Store(db)
    [(batch_id,)] = sqlite3.connect(db).execute("SELECT id FROM batches").fetchall()
    rows = store.batch_cases(batch_id)
    assert finished_before_kill <= len(rows) < 300
    assert store.batch(batch_id).finished_at is None  # it never got to finish
    for row in rows:
        answer = store.answer(row.answer_id)
        assert row.error is None and answer.origin == "batch"
        assert answer.stats["completion_tokens"] == 64 and answer.answer
        assert answer.prompt.endswith(f"Question number {row.position - 1}?<|end|>"
                                      "<|assistant|>")
    check = sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0]
    assert check == "ok"
    assert not (tmp_path / "out" / "results.csv").exists()
    store.close()


def _wait_for_cases(db: Path, process: subprocess.Popen, at_least: int, log: Path) -> int:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the batch ended early:\n{log.read_text()[-3000:]}"
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            count = conn.execute("SELECT COUNT(*) FROM batch_cases").fetchone()[0]
            conn.close()
        except sqlite3.OperationalError:
            count = 0  # not created or not migrated yet
        if count >= at_least:
            return int(count)
        time.sleep(0.05)
    raise AssertionError(f"no {at_least} cases recorded in time:\n{log.read_text()[-3000:]}")


def _kill_group(process: subprocess.Popen) -> None:
    """The engine's own process is in the batch's session: end it too."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


# ---------------------------------------------------------------- case files

def test_jsonl_problems_are_reported_per_case(tmp_path):
    write_image(tmp_path, "cat.png")
    (tmp_path / "notes.txt").write_text("not media")
    path = write_jsonl(tmp_path / "cases.jsonl", [
        {"id": "ok", "prompt": "What is this?", "image": "cat.png", "expected": "cat",
         "tags": ["vision", "Easy"]},
        '{"prompt": "broken", ',
        "[1, 2]",
        {"prompt": "Where?", "image": "missing.png"},
        {"prompt": "Text?", "audio": "notes.txt"},
        {"prompt": ""},
        {"prompt": {"nested": True}},
        {"prompt": "fine", "colour": "red"},
    ])
    loaded = read_cases(path)
    errors = [c.error for c in loaded.cases]

    assert errors[0] is None and loaded.cases[0].files == (str(tmp_path / "cat.png"),)
    assert loaded.cases[0].images == ("cat.png",)
    assert loaded.cases[0].tags == ("vision", "easy") and loaded.cases[0].expected == "cat"
    assert errors[1].startswith("line 2: not valid JSON")
    assert errors[2] == "line 3: expected a JSON object like {\"prompt\": \"...\"}, got list"
    assert errors[3].startswith("line 4: image file 'missing.png' not found (looked at ")
    assert errors[4].startswith("line 5: 'notes.txt' is not an audio file")
    assert errors[5] == "line 6: no prompt and no image or audio"
    assert errors[6] == "line 7: 'prompt' must be text, not dict"
    assert errors[7] is None and loaded.invalid == 6
    assert loaded.notes == ("ignored unknown field(s): colour (known: id, prompt, image, audio, "
                            "expected, tags, task, pattern, images, audios)",)


def test_csv_cases_and_their_problems(tmp_path):
    write_image(tmp_path, "a.png")
    path = tmp_path / "cases.csv"
    path.write_text('prompt,image,expected,tags,notes\n"Hello, there",,hi,a;b,x\n'
                    "Look,a.png,,,\nToo,many,cells,here,x,y\n")
    loaded = read_cases(path)
    assert [c.prompt for c in loaded.cases] == ["Hello, there", "Look", ""]
    assert loaded.cases[0].tags == ("a", "b") and loaded.cases[0].expected == "hi"
    assert loaded.cases[1].files == (str(tmp_path / "a.png"),)
    assert loaded.cases[2].error == ("row 4: 6 cells but the header has 5 columns (a comma "
                                     "inside an unquoted cell?)")
    assert loaded.notes == ("ignored column(s): notes",)


def test_text_that_is_not_text_becomes_a_case_error_and_the_others_load(tmp_path):
    path = tmp_path / "cases.jsonl"
    long_prompt = "x" * (MAX_MESSAGE_CHARS + 1)
    path.write_text("\n".join([
        '{"prompt": "\\ud800"}',  # valid JSON escapes, but half of a character
        '{"id": "\\udc00", "prompt": "fine", "tags": ["a\\ud83d"]}',
        '{"prompt": "a\\u0000b"}',
        '{"prompt": "ok", "image": "cat\\ud800.png"}',
        json.dumps({"prompt": long_prompt}),
        json.dumps({"prompt": "x" * MAX_MESSAGE_CHARS}),
        '{"prompt": "one\u2028line\u0085still\u2029one"}',  # raw, as JSON allows
        '{"prompt": "fine", "\\ud800": 1}',
    ]) + "\n", encoding="utf-8")

    loaded = read_cases(path)

    errors = [c.error for c in loaded.cases]
    assert errors[0] == ("line 1: 'prompt' holds \\ud800 at character 1, half of a character "
                         "that cannot be stored or sent; write the character itself, or both "
                         "halves of its \\u escape pair")
    assert errors[1].startswith("line 2: 'id' holds \\udc00 at character 1")
    assert loaded.cases[1].id == "2"  # its position, since the id cannot be shown
    assert errors[2] == ("line 3: 'prompt' holds a NUL character at character 2; remove it "
                         "(a NUL usually means the file is not plain UTF-8 text)")
    assert errors[3].startswith("line 4: 'image' holds \\ud800 at character 4")
    assert errors[4] == ("line 5: the prompt is 100,001 characters long; at most 100,000 fit "
                         "in one message. Shorten it or split it into several cases")
    assert errors[5] is None and errors[6] is None and errors[7] is None
    assert loaded.cases[6].prompt == "one\u2028line\u0085still\u2029one"
    assert len(loaded.cases) == 8, "U+2028 and U+0085 do not end a line"
    assert loaded.notes == ("ignored unknown field(s): \\ud800 (known: id, prompt, image, "
                            "audio, expected, tags, task, pattern, images, audios)",)
    for case in loaded.cases:  # everything kept can be encoded, so stored and shown
        for text in (case.id, case.prompt, case.error or "", *case.tags, *case.images):
            text.encode("utf-8")


def test_odd_csv_cells_become_case_errors_and_a_long_cell_does_not_refuse_the_file(tmp_path):
    path = tmp_path / "cases.csv"
    huge = "y" * 200_000  # over the csv module's own cell limit of 131,072
    path.write_text(f'prompt,tags\n"a\x00b",x\n"{huge}",\n"tab\tand\rreturn\u2028, too",'
                    '"\u00e9;\u00c9"\n', encoding="utf-8", newline="")

    loaded = read_cases(path)

    errors = [c.error for c in loaded.cases]
    assert errors[0].startswith("row 2: 'prompt' holds a NUL character at character 2")
    assert errors[1].startswith("row 3: the prompt is 200,000 characters long; at most "
                                "100,000")
    assert errors[2] is None
    assert loaded.cases[2].prompt == "tab\tand\rreturn\u2028, too"
    assert loaded.cases[2].tags == ("\u00e9", "\u00e9")


@pytest.mark.parametrize(("name", "content", "message"), [
    ("cases.csv", "question,answer\nhi,there\n", "the header has no 'prompt' column (found: "
                                                  "question, answer)"),
    ("cases.csv", "", "the file is empty"),
    ("cases.csv", 'prompt\n"unclosed\n', "not valid CSV at line"),
    ("cases.jsonl", "\n\n", "no cases in the file"),
    ("cases.txt", "prompt\nhi\n", "cases come in a .jsonl or .csv file"),
    ("cases.jsonl", b"\xff\xfe{", "not UTF-8 text"),
])
def test_unusable_files_are_reported_as_a_whole(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(CaseFileError, match=re.escape(message)):
        read_cases(path)


def test_a_ten_thousand_case_upload_is_refused_by_the_page_but_not_the_command_line(tmp_path):
    path = write_jsonl(tmp_path / "big.jsonl", [{"prompt": f"q{i}"} for i in range(10_000)])
    with pytest.raises(CaseFileError) as refused:
        read_cases(path, max_cases=PAGE_MAX_CASES)
    assert str(refused.value) == (
        "big.jsonl holds 10,000 cases; the page runs at most 1,000 at a time. Split the file, "
        "or run all of it from the command line: python -m phi4ui batch big.jsonl --out "
        "results/")
    assert len(read_cases(path).cases) == 10_000


def test_uploads_are_staged_flat_or_from_a_zip(tmp_path):
    image = write_image(tmp_path, "cat.png")
    cases = write_jsonl(tmp_path / "cases.jsonl", [{"prompt": "p", "image": "img/cat.png"}])
    flat = tmp_path / "flat"
    flat.mkdir()
    staged = stage_upload([cases, image], flat)
    assert read_cases(staged, loose_media=True).cases[0].error is None
    assert read_cases(staged).cases[0].error.startswith("line 1: image file 'img/cat.png'")

    archive = tmp_path / "cases.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(cases, "suite/cases.jsonl")
        z.write(image, "suite/img/cat.png")
    unzipped = tmp_path / "unzipped"
    unzipped.mkdir()
    staged = stage_upload([archive], unzipped)
    assert read_cases(staged).cases[0].error is None
    assert read_cases(staged, confine_to=unzipped).cases[0].error is None
    only_media = tmp_path / "only-media"
    only_media.mkdir()
    with pytest.raises(CaseFileError, match=r"exactly one \.jsonl or \.csv"):
        stage_upload([image], only_media)


def test_expected_answers_are_found_ignoring_case_and_spacing():
    case = Case(1, "line 1", "1", "q", expected="Paris  is")
    assert CaseResult(case, answer="I think PARIS is nice").expected_found is True
    assert CaseResult(case, answer="London").expected_found is False
    assert CaseResult(case, error="boom").expected_found is None
    assert CaseResult(Case(1, "line 1", "1", "q"), answer="x").expected_found is None


def test_the_command_line_reports_a_bad_file_without_starting_an_engine(tmp_path, capsys):
    path = tmp_path / "cases.csv"
    path.write_text("question\nhi\n")
    assert batch_command.main([str(path), "--record", "false"]) == 2
    assert "the header has no 'prompt' column" in capsys.readouterr().err


# ---------------------------------------------------------------- a real batch

@pytest.mark.engine
def test_a_mixed_batch_gives_the_right_table_summary_and_record(tmp_path, embedded_engine,
                                                                engine_loop):
    write_image(tmp_path, "cat.png", size=(200, 150))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    path = write_jsonl(tmp_path / "cases.jsonl", [
        {"id": "t1", "prompt": "Say hello.", "expected": "zebra-never-said", "tags": ["text"]},
        {"id": "img", "prompt": "What animal?", "image": "cat.png"},
        "{oops",
        {"id": "gone", "prompt": "Describe.", "image": "gone.png"},
        {"id": "corrupt", "prompt": "Describe.", "image": "broken.png"},
        {"id": "t2", "prompt": "Count to three."},
    ])
    store = Store(tmp_path / "answers.db")
    progress: list[tuple[int, int]] = []
    options = BatchOptions(system="Be brief.", concurrency=3,
                           sampling=Sampling(temperature=0.0, max_tokens=8, ignore_eos=True))

    run = engine_loop.run(batch.run_batch(
        embedded_engine, read_cases(path), options, store=store,
        on_progress=lambda done, total, _: progress.append((done, total))))

    rows = [r.row() for r in run.results]
    assert [r["id"] for r in rows] == ["t1", "img", "3", "gone", "corrupt", "t2"]
    assert [bool(r["error"]) for r in rows] == [False, False, True, True, True, False]
    assert rows[2]["error"].startswith("line 3: not valid JSON")
    assert rows[3]["error"].startswith("line 4: image file 'gone.png' not found")
    assert rows[4]["error"] == ("line 5: broken.png is not an image that can be read: it is "
                                "damaged, cut short or in an unsupported format. PNG, JPEG, "
                                "WebP, GIF, BMP and TIFF work.")
    for row in (rows[0], rows[1], rows[5]):
        assert row["answer"] and row["completion_tokens"] == 8 and row["ttft_s"] > 0
        assert row["answer_id"]
    assert rows[1]["adapter"] == "vision" and rows[0]["expected_found"] is False
    assert progress == [(n, 6) for n in range(1, 7)]

    summary = run.summary
    assert (summary.cases, summary.answered, summary.errors) == (6, 3, 3)
    assert 0 < summary.ttft_p50_s <= summary.ttft_p95_s
    assert summary.tokens_per_s_p50 > 0 and summary.completion_tokens == 24
    assert (summary.expected_checked, summary.expected_found) == (1, 0)
    assert "cases 6: 3 answered, 3 errors" in summary.lines()

    recorded = store.batch_cases(run.batch_id)
    assert [r.case_id for r in recorded] == [r["id"] for r in rows]
    assert [r.answer_id or "" for r in recorded] == [r["answer_id"] for r in rows]
    assert store.batch(run.batch_id).summary["errors"] == 3
    assert store.answer(rows[0]["answer_id"]).origin == "batch"

    csv_path, json_path = batch.write_results(run, tmp_path / "results")
    with csv_path.open() as handle:
        table = list(csv.DictReader(handle))
    assert [r["id"] for r in table] == [r["id"] for r in rows]
    assert list(table[0]) == list(batch.COLUMNS)
    document = json.loads(json_path.read_text())
    assert document["summary"]["answered"] == 3
    assert document["results"][0]["stats"]["completion_tokens"] == 8
    assert document["results"][2]["stats"] is None
    store.close()


# ---------------------------------------------------------------- the page's batch

class _Granted:
    """Stands in for the page's file grants."""

    def __init__(self) -> None:
        self.paths: list = []

    def grant(self, request, paths) -> None:
        self.paths += paths


@pytest.mark.engine
def test_the_page_runs_a_batch_with_bad_lines_to_its_end_showing_paths_as_given(
        tmp_path, embedded_engine, engine_loop):
    import asyncio

    from phi4ui.evaluation import staging
    from phi4ui.page.batch_tab import batch_updates as _batch_updates
    from phi4ui.page.batch_tab import load_cases as _load_cases

    image = write_image(tmp_path, "cat.png", size=(64, 48))
    cases = tmp_path / "cases.jsonl"
    cases.write_text("\n".join([
        '{"id": "s", "prompt": "\\ud800"}',
        '{"id": "nul", "prompt": "a\\u0000b"}',
        json.dumps({"id": "huge", "prompt": "x" * (MAX_MESSAGE_CHARS + 1)}),
        json.dumps({"id": "img", "prompt": "What is it?", "image": "img/cat.png"}),
        *(json.dumps({"id": f"t{n}", "prompt": f"Say {n}."}) for n in range(6)),
    ]) + "\n")
    store = Store(tmp_path / "answers.db")
    granted = _Granted()
    options = BatchOptions(sampling=Sampling(temperature=0.0, max_tokens=4, ignore_eos=True),
                           concurrency=3, user="ada")

    async def run() -> tuple[list, str]:
        with staging.job_folder("batch") as folder:
            case_file = await asyncio.to_thread(_load_cases, [str(cases), str(image)], 10,
                                                folder)
            shown = [update async for update in _batch_updates(
                embedded_engine, store, granted, None, case_file, options, [],
                lambda *_, **__: None)]
        return shown, str(folder)

    shown, folder = engine_loop.run(run())

    status, rows, *_ = shown[-1]
    status = status.replace("\\", "")  # Markdown escapes
    assert status.startswith("**Done.**") and "cases 10: 7 answered, 3 errors" in status
    assert [row[4].split(":")[0] for row in rows[:3]] == ["line 1", "line 2", "line 3"]
    assert "'prompt' holds \\ud800 at character 1" in rows[0][4]
    assert rows[3][3] and not rows[3][4]
    csv_path, json_path = granted.paths
    for written in (csv_path.read_text(), json_path.read_text()):
        assert folder not in written and "phi4ui-staging" not in written
    document = json.loads(json_path.read_text())
    assert document["source"] == "cases.jsonl"
    assert document["results"][3]["images"] == "img/cat.png"
    [recorded] = [r for r in store.batch_cases(document["batch_id"]) if r.case_id == "img"]
    assert store.answer(recorded.answer_id).user == "ada"
    store.close()


def test_results_that_cannot_be_written_still_end_the_page_with_the_summary(monkeypatch):
    import asyncio

    from phi4ui.page.batch_tab import batch_end as _batch_end

    def fail(run, folder):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(batch, "write_results", fail)
    results = [CaseResult(Case(1, "line 1", "a", "q"), error="line 1: bad")]
    run = batch.BatchRun("b", "cases.jsonl", BatchOptions(), results,
                         batch.summarize(results, 1.0))
    status, rows, *_ = asyncio.run(_batch_end(run, _Granted(), None))
    status = status.replace("\\", "")  # Markdown escapes
    assert status.startswith("**Done.**")
    assert status.endswith("⚠️ The CSV and JSON could not be written ([Errno 28] No space "
                           "left on device).")
    assert rows[0][4] == "line 1: bad"


def test_a_case_that_breaks_the_worker_becomes_its_error_and_the_run_ends(monkeypatch):
    import asyncio

    async def broken(engine, case, options):
        raise RuntimeError("surprise")

    monkeypatch.setattr(batch, "run_case", broken)
    cases = [Case(n, f"line {n}", str(n), "q") for n in (1, 2, 3)]
    loaded = CaseFile(Path("cases.jsonl"), cases)
    run = asyncio.run(batch.run_batch(None, loaded, BatchOptions(concurrency=2)))  # type: ignore[arg-type]
    assert [r.error for r in run.results] == [
        f"line {n}: internal error (RuntimeError: surprise); see the app's log"
        for n in (1, 2, 3)]
    assert run.summary.errors == 3
