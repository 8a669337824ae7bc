"""The page's events, called over plain HTTP as an attacker would: every value the
browser sends is hostile. A real app process on 127.0.0.1 (the tiny checkpoint on the
tests' shared vLLM server, a real SQLite file, a login) and two colleagues, alice and bob.

What must hold: no file the server can read leaves it unless this visitor uploaded it
(or it is one of the app's examples); the conversation, its answer ids and its exports
are the session's own; every record carries its login name."""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.procs import ROOT
from tests.support.apprun import RunningApp, start_app
from tests.support.mediafiles import image_bytes
from tests.support.pageclient import (
    EventResult,
    PageClient,
    chain,
    file_urls,
    retry_chain,
    send_data,
    send_message,
    unsent_data,
)
from tests.support.vllm_server import VllmServer

pytestmark = pytest.mark.engine
CANARY = "canary-7f3a9c1e-not-for-the-browser"
USERS = {"alice": "alice-pw-" + CANARY, "bob": "bob-pw-" + CANARY}
NOT_YOURS = "not one you uploaded on this page"
FILE_CARRYING = {"chatbot", "multimodaltextbox", "file", "image", "audio", "video",
                 "downloadbutton", "uploadbutton", "gallery", "model3d", "dataframe", "json"}


@pytest.fixture(scope="module")
def app(checkpoint: Path, vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[RunningApp]:
    scratch = tmp_path_factory.mktemp("secured-app")
    (scratch / "secret.txt").write_text(CANARY)
    (scratch / "outside.png").write_bytes(image_bytes((64, 48)))
    logins = ",".join(f"{user}:{password}" for user, password in USERS.items())
    running = start_app(checkpoint, scratch, *vllm_server.app_flags(),
                        env={"PHI4UI_AUTH": logins, "PHI4UI_TEST_CANARY": CANARY})
    yield running
    running.stop()


@pytest.fixture()
def alice(app: RunningApp) -> Iterator[PageClient]:
    client = PageClient(app.url, login=("alice", USERS["alice"]))
    yield client
    client.close()


@pytest.fixture()
def bob(app: RunningApp) -> Iterator[PageClient]:
    client = PageClient(app.url, login=("bob", USERS["bob"]))
    yield client
    client.close()


def foreign_paths(app: RunningApp) -> list[str]:
    """Files the server can read that no visitor uploaded."""
    return ["/proc/self/environ", str(app.db_path), str(ROOT / "app.py"),
            str(app.scratch / "secret.txt"), str(app.scratch / "outside.png"), "/etc/hostname",
            str(app.gradio_dir / ".." / "secret.txt"), "http://127.0.0.1:9/x.png"]


def file_data(path: str, name: str = "x.png") -> dict[str, Any]:
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def hostile_value(kind: str, path: str) -> Any:
    """What a hostile browser sends for a component of `kind`, naming `path`."""
    item = file_data(path)
    return {
        "chatbot": [{"role": "user", "content": [{"type": "file", "file": item}]},
                    {"role": "assistant", "content": [{"type": "file", "file": item}],
                     "metadata": {"id": "0" * 32}}],
        "multimodaltextbox": {"text": "describe", "files": [item]},
        "file": [item], "image": item, "audio": item, "video": item, "downloadbutton": item,
        "uploadbutton": item, "gallery": [{"image": item, "caption": None}],
    }.get(kind, path)


def assert_nothing_leaked(client: PageClient, result: EventResult, app: RunningApp) -> None:
    secret_bodies = [CANARY.encode(), (ROOT / "app.py").read_bytes()[:200]]
    assert CANARY not in result.raw
    for path in file_urls(result.raw):
        response = client.fetch(path)
        if response.status_code == 200:
            assert not any(secret in response.content for secret in secret_bodies), path


def send(client: PageClient, message: dict[str, Any]) -> tuple[EventResult, EventResult | None]:
    """The page's send chain: the send step, then, if it refused, the step that tells why
    (if it answered, the second is the same result)."""
    sent, told = send_message(client, message)
    return sent, sent if told is None else told


def records(app: RunningApp) -> list[dict[str, Any]]:
    with sqlite3.connect(app.db_path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM answers ORDER BY created_at")]


# ---------------------------------------------------------------- every event, fuzzed

def test_no_event_hands_out_a_file_it_was_sent_the_path_of(app, alice):
    """Each backend event of the page (read from its config), with every file-carrying
    input naming a server file, and the other inputs at their defaults."""
    components = alice.components_by_id()
    dependencies = alice.dependencies()
    assert len(dependencies) >= 30  # the whole page, not a hand-picked part
    before = len(records(app))
    calls = 0
    for dependency in dependencies:
        kinds = [components.get(i, {}).get("type", "state") for i in dependency["inputs"]]
        if not any(kind in FILE_CARRYING for kind in kinds):
            continue
        for path in foreign_paths(app):
            data = [hostile_value(kind, path) if kind in FILE_CARRYING
                    else components.get(i, {}).get("props", {}).get("value")
                    for kind, i in zip(kinds, dependency["inputs"], strict=True)]
            event = {"index": [1, 0], "value": "edited", "liked": True, "row_value": ["x"]}
            result = alice.call(dependency, data, event_data=event)
            assert_nothing_leaked(alice, result, app)
            calls += 1
    assert calls >= 40
    assert len(records(app)) == before  # nothing was answered from a foreign file
    leaked = [p for p in app.gradio_dir.rglob("*") if p.is_file()
              and CANARY.encode() in p.read_bytes()]
    assert not leaked


def test_the_textbox_refuses_a_server_path_and_keeps_the_conversation(app, alice):
    for path in foreign_paths(app):
        accepted, _ = send(alice, {"text": "what is this?", "files": [file_data(path)]})
        assert not accepted.success
        assert_nothing_leaked(alice, accepted, app)
    undo = alice.call(alice.dependency("chatbot", "undo"), [None, None])
    assert not undo.success  # there is nothing in the server's conversation to undo


# ---------------------------------------------------------------- between visitors

def test_an_upload_is_fetched_only_by_the_visitor_who_uploaded_it(alice, bob):
    uploaded = alice.upload("mine.png", image_bytes((32, 32)))
    assert alice.fetch(uploaded["path"]).status_code == 200
    assert bob.fetch(uploaded["path"]).status_code == 404


def test_another_visitors_upload_cannot_be_sent(app, alice, bob):
    uploaded = alice.upload("private.png", image_bytes((40, 30)))
    accepted, refusal = send(bob, {"text": "what is this?", "files": [uploaded]})
    assert not accepted.success
    assert refusal is not None and NOT_YOURS in refusal.text
    # the message comes back to bob's input without alice's file
    assert refusal.data == [{"text": "what is this?", "files": []}]
    assert uploaded["path"] not in refusal.raw


def test_an_answer_is_recorded_with_the_login_and_exported_only_by_its_session(app, alice,
                                                                              bob):
    uploaded = alice.upload("photo.png", image_bytes((64, 64)))
    accepted, answered = send(alice, {"text": "What is this?", "files": [uploaded]})
    assert accepted.success and answered is not None and answered.success, answered
    mine = records(app)[-1]
    assert mine["user"] == "alice"

    exported = alice.call(alice.dependency("export-conversation", "click"), [None])
    assert exported.success
    [zip_path] = {p for p in file_urls(exported.raw) if p.endswith(".zip")}
    response = alice.fetch(zip_path)
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as bundle:
        document = json.loads(bundle.read("bundle.json"))
    assert [r["id"] for r in document["records"]] == [mine["id"]]
    assert bob.fetch(zip_path).status_code == 404

    # bob's session has no answers, whatever his browser claims to show
    theirs = bob.call(bob.dependency("export-conversation", "click"), [None])
    assert mine["id"] not in theirs.raw
    assert "no recorded answer" in theirs.text
    liked = bob.call(bob.dependency("chatbot", "like"), [None],
                     event_data={"index": 1, "value": "x", "liked": True})
    assert "cannot be rated" in liked.text


def test_an_answer_step_called_without_an_accepted_message_does_nothing(app, bob):
    _, answer, _ = retry_chain(bob)
    before = len(records(app))
    result = bob.call(answer, [None, None, "Be brief.", 0.0, 1.0, 16, 1])
    assert result.success and len(records(app)) == before


# ---------------------------------------------------------------- sizes and odd text

def test_an_oversized_event_body_is_refused_before_it_is_read(alice):
    send_step, _ = chain(alice)
    body = {"data": send_data({"text": "x" * 5_000_000, "files": []}),
            "fn_index": send_step["id"], "session_hash": alice.session_hash}
    response = alice.http.post("/gradio_api/queue/join", json=body)
    assert response.status_code == 413 and "larger than the 4 MB" in response.text
    assert alice.http.get("/healthz").status_code == 200


def test_a_message_longer_than_the_text_box_takes_is_refused_with_its_length(alice):
    accepted, refusal = send(alice, {"text": "word " * 40_000, "files": []})
    assert not accepted.success
    assert refusal is not None and "200,000 characters" in refusal.text


def test_a_lone_surrogate_in_the_text_is_answered_not_dropped(app, bob):
    send_step, _ = chain(bob)
    # JSON may carry a lone surrogate escaped; no encoding can carry it as text
    body = json.dumps({"data": send_data({"text": "half a pair: \ud800 then more",
                                          "files": []}),
                       "fn_index": send_step["id"], "session_hash": bob.session_hash})
    joined = bob.http.post("/gradio_api/queue/join", content=body,
                           headers={"content-type": "application/json"})
    assert joined.status_code == 200, joined.text
    completed = [m for m in bob.events(joined.json()["event_id"])
                 if m.get("msg") == "process_completed"]
    assert completed and completed[0].get("success"), completed
    turns = json.loads(records(app)[-1]["turns"])
    assert turns[-1]["parts"][-1]["text"] == "half a pair: \ufffd then more"


def test_settings_out_of_range_keep_the_message_and_say_so(app, bob):
    send_step, unsent = chain(bob)
    hello = {"text": "hello", "files": []}
    before = len(records(app))
    refused = bob.call(send_step, send_data(hello, temperature=5.0, send_id="1"))
    assert not refused.success
    assert "greater than maximum value 2" in refused.text  # Gradio's own check says why
    back = bob.call(unsent, unsent_data(hello, send_id="1"))
    assert back.data == [hello]  # back in the input
    assert len(records(app)) == before
    # nothing was accepted: the conversation is as it was, and good settings answer
    undo = bob.call(bob.dependency("chatbot", "undo"), [None, None])
    assert not undo.success
    assert bob.call(send_step, send_data(hello, send_id="2")).success
    assert len(records(app)) == before + 1
    # a send that began and was then cancelled (Clear) gives nothing back
    assert hello not in bob.call(unsent, unsent_data(hello, send_id="2")).data


def test_settings_out_of_range_on_a_retry_end_in_a_message_that_says_so(app, bob):
    assert send(bob, {"text": "hello", "files": []})[0].success
    retry, answer, not_started = retry_chain(bob)
    assert bob.call(retry, [None, None]).success
    refused = bob.call(answer, [None, None, "Be brief.", 5.0, 1.0, 16, 1])
    assert not refused.success
    finished = bob.call(not_started, [None])
    assert "could not start: the settings sent are not valid" in json.dumps(finished.data)
    # the message is kept, and a retry with good settings answers it
    again = bob.call(retry, [None, None])
    assert again.success and "hello" in json.dumps(again.data)
    assert bob.call(answer, [None, None, "Be brief.", 0.0, 1.0, 16, 1]).success
