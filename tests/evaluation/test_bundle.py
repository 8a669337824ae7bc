"""Reproducibility bundles: a recorded conversation exported as a zip, then replayed
through the real tiny engine with the same prompt and media."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile

import pytest

from phi4ui.commands import replay as replay_command
from phi4ui.core import history as chat_history
from phi4ui.core.chat import Sampling
from phi4ui.evaluation import bundle, recording, replay
from phi4ui.evaluation.bundle import BundleError
from phi4ui.evaluation.replay import ReplayMismatch, ReplayResult
from phi4ui.evaluation.review_query import ReviewFilter
from phi4ui.evaluation.store import Store
from tests.support.evalhelpers import answer_of
from tests.support.mediafiles import write_audio, write_image

GREEDY = Sampling(temperature=0.0, max_tokens=10, seed=1, ignore_eos=True)


@pytest.fixture()
def store(tmp_path):
    store = Store(tmp_path / "answers.db")
    yield store
    store.close()


@pytest.fixture()
def conversation(tmp_path, store, embedded_engine, engine_loop):
    """Two recorded answers of one chat: an image question, then an audio follow-up."""
    image = write_image(tmp_path, "scene.png", size=(300, 200))
    audio = write_audio(tmp_path, "question.wav", seconds=1.0)
    history: list[dict] = []
    for text, path in (("What is this?", image), ("And this?", audio)):
        message = {"text": text, "files": [str(path)]}
        update = engine_loop.run(answer_of(embedded_engine, message, GREEDY, history))
        recorded = engine_loop.run(recording.record_update(
            store, embedded_engine.info, update, parent_id=chat_history.last_answer_id(history)))
        history += [{"role": "user", "content": [{"path": str(path)}, text]},
                    chat_history.mark({"role": "assistant", "content": update.text},
                                   recorded.answer_id)]
    store.rate(chat_history.answer_ids(history)[0], -1, comment="nonsense", tags=["wrong"])
    return history


@pytest.mark.engine
def test_a_conversation_exports_with_its_records_media_and_a_replay_line(tmp_path, store,
                                                                         conversation):
    ids = chat_history.answer_ids(conversation)
    path = bundle.export_bundle(store, ids, tmp_path / "out" / "chat.zip")

    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        document = json.loads(archive.read("bundle.json"))
        readme = archive.read("README.txt").decode()
        media = {n: archive.read(n) for n in names if n.startswith("media/")}
    assert "python -m phi4ui replay chat.zip" in readme
    assert [r["id"] for r in document["records"]] == ids
    first, second = document["records"]
    assert second["parent_id"] == first["id"] == second["conversation_id"]
    assert set(first) >= {"system", "turns", "prompt", "answer", "engine", "adapter",
                          "sampling", "stats", "versions", "created_at", "media", "ratings"}
    assert first["ratings"][0]["comment"] == "nonsense"
    assert first["ratings"][0]["tags"] == ["wrong"]
    # The follow-up's conversation holds both files; each is in the zip once.
    assert [m["kind"] for m in second["media"]] == ["image", "audio"]
    assert len(media) == 2
    for name, data in media.items():
        assert name == f"media/{hashlib.sha256(data).hexdigest()}{name[-4:]}"


@pytest.mark.engine
def test_replay_gives_the_same_prompt_and_media(tmp_path, store, conversation,
                                                embedded_engine, engine_loop):
    ids = chat_history.answer_ids(conversation)
    path = bundle.export_bundle(store, ids, tmp_path / "chat.zip")
    opened = bundle.read_bundle(path, tmp_path / "extracted")
    seen: list = []

    results = engine_loop.run(replay.replay_bundle(embedded_engine, opened, store=store,
                                                   on_result=seen.append))

    assert seen == results and len(results) == 2
    for result, original in zip(results, store.answers(ids), strict=True):
        assert isinstance(result, ReplayResult)
        assert recording.build_record(result.request, "", result.stats,
                                      embedded_engine.info, origin="x").prompt == original.prompt
        hashes = [m.sha256 for m in (*result.request.images, *result.request.audios)]
        assert hashes == [m.sha256 for m in original.media]
        assert result.request.adapter == original.adapter == "vision"
        assert result.stats.completion_tokens == GREEDY.max_tokens
        assert result.same_answer, "greedy decoding of the same prompt gives the same answer"
        replayed = store.answer(result.recorded.answer_id)
        assert (replayed.origin, replayed.replay_of) == ("replay", original.id)
        assert replay.describe(result).startswith(f"ok {original.id}: same prompt, same media")


@pytest.mark.engine
def test_a_bundle_whose_media_were_changed_is_refused_before_anything_runs(
        tmp_path, store, conversation):
    first = chat_history.answer_ids(conversation)[:1]
    path = bundle.export_bundle(store, first, tmp_path / "a.zip")
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith(".png"):
                data = write_image(tmp_path, "other.png", size=(300, 201)).read_bytes()
            target.writestr(item, data)

    with pytest.raises(BundleError, match=r"the bytes of media/[0-9a-f]{64}\.png do not have "
                                          "the SHA-256 it is named by"):
        bundle.read_bundle(tampered, tmp_path / "extracted")
    assert not any((tmp_path / "extracted").rglob("*.png"))


@pytest.mark.engine
def test_a_replay_whose_prompt_would_differ_is_refused(tmp_path, store, conversation,
                                                       embedded_engine, engine_loop):
    original = store.answer(chat_history.answer_ids(conversation)[0])
    changed = dataclasses.replace(original, prompt=original.prompt.replace("What", "Who"))
    with pytest.raises(ReplayMismatch, match=r"prompt differs .* at character"):
        engine_loop.run(replay.rebuild_request(embedded_engine, changed))


@pytest.mark.parametrize(("content", "message"), [
    (b"not a zip", "not a zip file"),
    ({"README.txt": "hi"}, "no bundle.json"),
    ({"bundle.json": "{"}, "not valid JSON"),
    ({"bundle.json": json.dumps({"format": "phi4ui-bundle", "format_version": 99,
                                 "records": []})}, "newer than"),
    ({"bundle.json": json.dumps({"format": "phi4ui-bundle", "format_version": 1,
                                 "records": [{"id": "x"}]})}, "incomplete"),
])
def test_files_that_are_not_bundles_are_reported(tmp_path, content, message):
    path = tmp_path / "bad.zip"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            for name, text in content.items():
                archive.writestr(name, text)
    with pytest.raises(BundleError, match=message):
        bundle.read_bundle(path, tmp_path / "x")


def test_the_replay_command_reports_a_bad_bundle_without_starting_an_engine(tmp_path,
                                                                          capsys):
    path = tmp_path / "bad.zip"
    path.write_bytes(b"nope")
    assert replay_command.main([str(path), "--record", "false"]) == 2
    assert "bad.zip: not a zip file" in capsys.readouterr().err


# ---------------------------------------------------------------- odd sampling

ODD_SAMPLING = [
    ({"temperature": -5}, "sampling 'temperature' is -5; it must be a number from 0 to 2."),
    ({"temperature": float("nan")}, "sampling 'temperature' is NaN; it must be a number from "
                                    "0 to 2."),
    ({"temperature": "hot"}, "sampling 'temperature' is \"hot\"; it must be a number from 0 "
                             "to 2."),
    ({"top_p": 2}, "sampling 'top_p' is 2; it must be a number from 0.05 to 1."),
    ({"max_tokens": "abc"}, "sampling 'max_tokens' is \"abc\"; it must be a whole number from "
                            "1 to 4,096."),
    ({"max_tokens": 10**12}, "sampling 'max_tokens' is 1000000000000; it must be a whole "
                             "number from 1 to 4,096."),
    ({"max_tokens": True}, "sampling 'max_tokens' is true; it must be a whole number from 1 "
                           "to 4,096."),
    ({"seed": 2**63 + 5}, "sampling 'seed' is 9223372036854775813; it must be a whole number "
                          "from 0 to 2,147,483,647 or null."),
    ({"seed": -1}, "sampling 'seed' is -1; it must be a whole number from 0 to 2,147,483,647 "
                   "or null."),
    ({"ignore_eos": "yes"}, "sampling 'ignore_eos' is \"yes\"; it must be true or false."),
    ({"top_k": 5}, "sampling has setting(s) this version does not know: \"top_k\" (known: "
                   "temperature, top_p, max_tokens, seed, ignore_eos)."),
]


@pytest.mark.parametrize(("change", "message"), ODD_SAMPLING)
def test_odd_sampling_is_refused_naming_the_field_value_and_range(change, message):
    recorded = {**dataclasses.asdict(GREEDY), **change}
    with pytest.raises(replay.ReplayRefused) as refused:
        replay.sampling_of(recorded, 4096, where="Record r1: ")
    assert str(refused.value) == f"Record r1: {message}"


def test_recorded_sampling_in_range_is_kept_exactly():
    assert replay.sampling_of(dataclasses.asdict(GREEDY), 4096) == GREEDY
    assert replay.sampling_of({}, 4096) == Sampling()
    top = {"temperature": 2, "top_p": 0.05, "max_tokens": 4096, "seed": 2**31 - 1}
    assert replay.sampling_of(top, 4096) == Sampling(2, 0.05, 4096, 2**31 - 1)


def test_the_replay_summary_counts_replayed_same_and_refused():
    refused = replay.ReplayRefused("Record x: no")
    assert replay.replay_summary([refused, refused], 3) == (
        "3 record(s): 0 replayed, 0 with the same answer, 2 refused.")
    assert replay.describe(refused) == "REFUSED Record x: no"


def test_the_batch_command_line_checks_its_sampling_like_a_replay(capsys):
    from phi4ui.commands import batch as batch_command

    assert batch_command.main(["cases.jsonl", "--record", "false", "--top-p", "7"]) == 2
    assert ("--top-p is 7.0; it must be a number from 0.05 to 1."
            in capsys.readouterr().err)


@pytest.mark.engine
def test_a_bundle_with_odd_sampling_replays_its_good_record_and_refuses_each_other(
        tmp_path, store, conversation, embedded_engine, engine_loop):
    from phi4ui.evaluation import staging
    from phi4ui.page.replay_panel import replay_report as _replay_report

    first = chat_history.answer_ids(conversation)[0]
    path = bundle.export_bundle(store, [first], tmp_path / "one.zip")
    odd = _with_records(path, tmp_path / "odd.zip", [change for change, _ in ODD_SAMPLING])
    answers_before = len(store.search(ReviewFilter()))

    async def report() -> list[str]:
        with staging.job_folder("replay") as folder:
            return [shown async for shown in _replay_report(embedded_engine, store, odd,
                                                            folder, user="ada")]

    shown = engine_loop.run(report())[-1].replace("\\", "")  # Markdown escapes
    lines = shown.splitlines()
    assert lines[0].startswith(f"- ok {first}: same prompt, same media")
    for line, (_, message) in zip(lines[1:], ODD_SAMPLING, strict=False):
        assert line == f"- REFUSED Record {first}: {message}"
    assert lines[-1] == (f"**{len(ODD_SAMPLING) + 1} record(s): 1 replayed, 1 with the same "
                         f"answer, {len(ODD_SAMPLING)} refused.**")
    [replayed] = store.search(ReviewFilter(origin="replay"))
    assert store.answer(replayed.id).user == "ada"
    assert len(store.search(ReviewFilter())) == answers_before + 1  # the huge seed wrote nothing



def _with_records(path, target, changes):
    """A copy of a one-record bundle: that record as it is, then one copy per change of
    its sampling."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as copy:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "bundle.json":
                document = json.loads(data)
                [original] = document["records"]
                document["records"] += [{**original, "sampling": {**original["sampling"],
                                                                  **change}}
                                        for change in changes]
                data = json.dumps(document).encode()
            copy.writestr(item, data)
    return target
