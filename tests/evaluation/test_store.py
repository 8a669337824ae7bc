"""The answer record on a real SQLite file: schema migrations, records with every field,
media kept once under a cap, ratings and votes, review filters, threads."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from phi4ui.core.chat import Sampling
from phi4ui.errors import BadInput
from phi4ui.evaluation import recording
from phi4ui.evaluation.migrations import MIGRATIONS, migrate
from phi4ui.evaluation.review_query import ReviewFilter
from phi4ui.evaluation.store import RecordNotFound, Store
from tests.support.evalhelpers import answer_of, record_for
from tests.support.mediafiles import write_audio, write_image

SCHEMA = {
    "migrations": ["number", "name", "applied_at"],
    "answers": ["id", "created_at", "origin", "conversation_id", "parent_id", "system", "turns",
                "prompt", "answer", "notes", "engine", "engine_kind", "model", "revision",
                "adapter", "sampling", "temperature", "top_p", "max_tokens", "seed", "stats",
                "ttft_s", "e2e_s", "tokens_per_s", "prompt_tokens", "completion_tokens",
                "finish_reason", "versions", "pair_id", "replay_of", "user"],
    "media": ["sha256", "kind", "name", "path", "size", "created_at"],
    "answer_media": ["answer_id", "position", "sha256"],
    "ratings": ["answer_id", "versus_id", "score", "comment", "tags", "created_at",
                "updated_at"],
    "batches": ["id", "created_at", "source", "cases", "options", "finished_at", "summary"],
    "batch_cases": ["batch_id", "position", "case_id", "prompt", "expected", "tags",
                    "answer_id", "error", "finished_at", "also_expected", "task", "pattern"],
}


@pytest.fixture()
def store(tmp_path):
    store = Store(tmp_path / "answers.db")
    yield store
    store.close()


def columns(path: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    found = {t: [c[1] for c in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
    conn.close()
    return found


# ---------------------------------------------------------------- schema

def test_an_empty_file_is_migrated_to_the_whole_schema_in_wal_mode(tmp_path):
    path = tmp_path / "new.db"
    Store(path).close()
    assert columns(path) == SCHEMA
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    numbers = [row[0] for row in conn.execute("SELECT number FROM migrations ORDER BY number")]
    assert numbers == [m.number for m in MIGRATIONS]


def test_migration_numbers_strictly_increase():
    numbers = [m.number for m in MIGRATIONS]
    assert numbers == sorted(set(numbers)) and numbers[0] == 1


def test_an_older_schema_is_brought_up_to_date_keeping_its_rows(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, upto=1) == [1]
    record = record_for("from the first schema")
    conn.execute("INSERT INTO answers (id, created_at, origin, conversation_id, system, turns, "
                 "prompt, answer, engine, engine_kind, model, sampling, stats, versions) "
                 "VALUES (?, ?, 'chat', ?, '', ?, ?, 'old answer', ?, 'embedded', 'tiny', ?, "
                 "?, '{}')",
                 (record.id, record.created_at, record.id, json.dumps(record.turns),
                  record.prompt, json.dumps(record.engine), json.dumps(record.sampling),
                  json.dumps(record.stats)))
    conn.close()

    store = Store(path)
    old = store.answer(record.id)
    assert old.answer == "old answer" and old.pair_id is None and old.replay_of is None
    assert old.user == ""
    store.rate(record.id, 1, comment="still rateable")
    assert store.rating(record.id).comment == "still rateable"
    store.close()
    assert columns(path) == SCHEMA
    assert migrate(sqlite3.connect(path, isolation_level=None)) == []


# ---------------------------------------------------------------- records

@pytest.mark.engine
def test_a_real_answer_is_recorded_with_every_field(tmp_path, store, embedded_engine,
                                                    engine_loop):
    image = write_image(tmp_path, "scene.png", size=(320, 240))
    audio = write_audio(tmp_path, "speech.wav", seconds=1.0)
    message = {"text": "What is in these?", "files": [str(image), str(audio)]}
    update = engine_loop.run(answer_of(embedded_engine, message,
                                       Sampling(temperature=0.0, top_p=0.95, max_tokens=12,
                                                seed=7, ignore_eos=True)))

    recorded = engine_loop.run(recording.record_update(store, embedded_engine.info, update))
    saved = store.answer(recorded.answer_id)

    assert saved.answer == update.text and saved.origin == "chat"
    assert saved.prompt.startswith("<|system|>Be brief.<|end|><|user|><|image_1|><|audio_1|>")
    assert saved.turns == [{"role": "user", "parts": [
        {"type": "image", "sha256": _sha(image), "name": "scene.png"},
        {"type": "audio", "sha256": _sha(audio), "name": "speech.wav"},
        {"type": "text", "text": "What is in these?"}]}]
    assert saved.adapter == "vision" and saved.conversation_id == saved.id
    assert saved.engine["model"] == embedded_engine.info.model
    assert saved.engine["revision"] == embedded_engine.info.revision
    assert saved.sampling == {"temperature": 0.0, "top_p": 0.95, "max_tokens": 12, "seed": 7,
                              "ignore_eos": True}
    assert saved.stats == json.loads(json.dumps(update.stats.as_dict()))
    assert {"phi4ui", "python", "vllm", "gradio", "transformers"} <= set(saved.versions)
    for item, original in zip(saved.media, (image, audio), strict=True):
        kept = Path(item.source)
        assert kept.parent.parent == store.path.with_name("answers.db.media")
        assert kept.name == f"{_sha(original)}{original.suffix}"
        assert kept.read_bytes() == original.read_bytes()
    row = sqlite3.connect(store.path).execute(
        "SELECT ttft_s, tokens_per_s, e2e_s, completion_tokens, finish_reason, model, "
        "temperature, seed FROM answers").fetchone()
    assert row == (update.stats.ttft_s, update.stats.decode_tokens_per_s, update.stats.e2e_s,
                   12, "length", embedded_engine.info.model, 0.0, 7)


def test_answers_of_one_conversation_are_chained(store):
    first = store.add_answer(record_for("hello"))
    second = store.add_answer(record_for("and then?", parent_id=first.answer_id))
    unknown_parent = store.add_answer(record_for("elsewhere", parent_id="not-recorded"))
    assert store.answer(second.answer_id).conversation_id == first.answer_id
    assert store.answer(second.answer_id).parent_id == first.answer_id
    assert store.answer(unknown_parent.answer_id).parent_id is None


def test_each_medium_is_kept_once(tmp_path, store):
    image = write_image(tmp_path, "same.png")
    store.add_answer(record_for("one", (image,)))
    store.add_answer(record_for("two", (image,)))
    files = list(store.media.folder.rglob("*.png"))
    assert len(files) == 1
    assert files[0].relative_to(store.media.folder).parts[0] == _sha(image)[:2]


def test_the_media_cap_evicts_unused_files_first_then_refuses_with_a_note(tmp_path):
    store = Store(tmp_path / "capped.db", media_max_bytes=2_500)
    small = [write_image(tmp_path, f"s{i}.png", size=(16, 16 + i)) for i in range(3)]
    assert all(p.stat().st_size < 1_200 for p in small)
    first = store.add_answer(record_for("a", (small[0],)))
    second = store.add_answer(record_for("b", (small[1],)))
    refused = store.add_answer(record_for("c", (small[2],)))
    assert refused.notes and "not kept" in refused.notes[0] and "s2.png" in refused.notes[0]
    assert "not kept" in store.answer(refused.answer_id).notes[-1]
    assert store.answer(first.answer_id).media[0].source  # old records keep theirs

    store.delete_answer(first.answer_id)
    kept = store.add_answer(record_for("d", (small[2],)))
    assert kept.notes == ()
    assert store.media_file(_sha(small[0])) is None  # the unreferenced file went
    assert store.media_file(_sha(small[1])) is not None
    assert store.answer(second.answer_id).media[0].source
    store.close()


def test_a_file_changed_after_sending_is_not_kept(tmp_path, store):
    image = write_image(tmp_path, "changing.png")
    record = record_for("x", (image,))
    image.write_bytes(image.read_bytes() + b"changed")
    recorded = store.add_answer(record)
    assert "changed after it was sent" in recorded.notes[0]


def test_many_threads_can_record_at_once(store):
    def write(n: int) -> None:
        for i in range(10):
            store.add_answer(record_for(f"thread {n} answer {i}"))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.search(ReviewFilter(limit=1000))) == 80


# ---------------------------------------------------------------- ratings

def test_changing_a_rating_updates_it(store):
    answer_id = store.add_answer(record_for("rate me")).answer_id
    first = store.rate(answer_id, 1)
    changed = store.rate(answer_id, -1, comment="Wrong city.", tags=["Wrong", " slow ", "wrong"])
    assert (changed.score, changed.comment, changed.tags) == (-1, "Wrong city.",
                                                                ("wrong", "slow"))
    assert changed.created_at == first.created_at and changed.updated_at >= first.updated_at
    kept = store.rate(answer_id, tags=["unsafe"])
    assert (kept.score, kept.comment, kept.tags) == (-1, "Wrong city.", ("unsafe",))
    assert len(store.ratings(answer_id)) == 1
    assert store.tags_in_use() == ["unsafe"]


def test_a_vote_is_stored_as_a_rating_on_both_answers(store):
    left = store.add_answer(record_for("q", pair_id="p1")).answer_id
    right = store.add_answer(record_for("q", pair_id="p1")).answer_id
    store.vote(left, right, "left")
    store.vote(left, right, "right", comment="on second thought")
    [on_left], [on_right] = store.ratings(left), store.ratings(right)
    assert (on_left.score, on_left.versus_id, on_left.comment) == (-1, right,
                                                                   "on second thought")
    assert (on_right.score, on_right.versus_id) == (1, left)
    assert store.rating(left) is None  # a vote is not a thumbs rating


def test_rating_what_was_not_recorded_is_refused(store):
    with pytest.raises(RecordNotFound):
        store.rate("nope", 1)
    answer_id = store.add_answer(record_for("x")).answer_id
    with pytest.raises(BadInput):
        store.rate(answer_id, 5)


# ---------------------------------------------------------------- review

def test_review_filters(store):
    up = store.add_answer(record_for("about cats")).answer_id
    down = store.add_answer(record_for("about dogs", origin="batch")).answer_id
    store.add_answer(record_for("about birds"))
    store.rate(up, 1, tags=["good"])
    store.rate(down, -1, tags=["wrong"])

    def ids(**query):
        return {row.id for row in store.search(ReviewFilter(**query))}

    assert ids(rating="up") == {up}
    assert ids(rating="down") == {down}
    assert len(ids(rating="unrated")) == 1
    assert ids(tag="wrong") == {down}
    assert ids(origin="batch") == {down}
    assert ids(text="cats") == {up}
    today = store.answer(up).created_at[:10]
    assert len(ids(since=today, until=today)) == 3
    assert ids(until="2000-01-01") == set()
    with pytest.raises(BadInput, match="YYYY-MM-DD"):
        ids(since="last week")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
