"""Hostile uploads: zips and bundles that try to write outside their folder, unpack to
far more than they weigh or smuggle links; case files that name server files; CSV cells
that a spreadsheet would run; and the temporary folders that must not pile up.

Every test uses real files and a real SQLite store, and checks both the message the
person gets and that nothing was written outside the staging folder."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from phi4ui.commands import replay as replay_command
from phi4ui.evaluation import batch, bundle, staging
from phi4ui.evaluation.archives import MAX_ENTRIES, ArchiveRefused, CheckedZip, Limits
from phi4ui.evaluation.batch import BatchOptions, BatchRun, CaseResult
from phi4ui.evaluation.bundle import BundleError
from phi4ui.evaluation.cases import Case, CaseFileError, read_cases, stage_upload
from phi4ui.evaluation.csvsafe import safe_cell
from phi4ui.evaluation.replay import ReplayMismatch, check_same
from phi4ui.evaluation.store import Store
from tests.support.evalhelpers import record_for, request_with
from tests.support.mediafiles import image_bytes, write_image

NOT_UPLOADED = ("is not among the uploaded files; name files relative to the case file and "
                "upload them with it")


@pytest.fixture(autouse=True)
def private_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own system temp folder, so that staging roots and sweeps stay in it."""
    temp = tmp_path / "systemp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def cases_zip(path: Path, extra: dict[str, bytes] | None = None,
              infos: list[tuple[zipfile.ZipInfo, bytes]] | None = None) -> Path:
    """A batch zip: a valid case file, plus hostile entries."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cases.jsonl", json.dumps({"prompt": "hi"}) + "\n")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
        for info, data in infos or []:
            archive.writestr(info, data)
    return path


def unix_entry(name: str, kind: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (kind | 0o644) << 16
    return info


def staged_or_refused(archive: Path, tmp_path: Path, limits: Limits | None = None) -> str:
    """Stages the zip into a fresh folder, expecting a refusal; checks nothing stayed."""
    folder = tmp_path / "staging"
    folder.mkdir()
    before = files_under(tmp_path)
    with pytest.raises(ArchiveRefused) as refused:
        stage_upload([archive], folder, limits=limits)
    assert list(folder.iterdir()) == [], "a refused archive leaves nothing behind"
    assert files_under(tmp_path) == before, "nothing was written anywhere else"
    return str(refused.value)


# ---------------------------------------------------------------- batch zips

@pytest.mark.parametrize(("name", "problem"), [
    ("../escape.txt", "climbs out of the archive's folder with '..'"),
    ("suite/../../escape.txt", "climbs out of the archive's folder with '..'"),
    ("{tmp}/outside/abs.txt", "is an absolute path"),
    ("C:/Windows/escape.txt", "names a drive"),
    ("..\\..\\escape.txt", "uses backslashes, a Windows path"),
    ("img/cat\x01.png", "has control characters in its name"),
])
def test_zip_entries_with_hostile_names_are_refused(tmp_path, name, problem):
    name = name.replace("{tmp}", str(tmp_path))
    archive = cases_zip(tmp_path / "cases.zip", {name: b"owned"})

    message = staged_or_refused(archive, tmp_path)

    assert message == (f"cases.zip: the entry {name!r} {problem}; phi4ui unpacks only plain "
                       "files under relative names, so nothing of the archive was used.")
    assert not (tmp_path / "outside").exists() and not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize(("kind", "problem"), [
    (stat.S_IFLNK, "is a symbolic link"),
    (stat.S_IFCHR, "is a device, pipe or socket, not a file"),
    (stat.S_IFIFO, "is a device, pipe or socket, not a file"),
])
def test_zip_entries_that_are_links_or_devices_are_refused(tmp_path, kind, problem):
    archive = cases_zip(tmp_path / "cases.zip",
                        infos=[(unix_entry("cat.png", kind), b"/etc/passwd")])
    message = staged_or_refused(archive, tmp_path)
    assert f"the entry 'cat.png' {problem}" in message


def set_central_field(path: Path, name: str, offset: int, value: int) -> None:
    """Changes one 2- or 4-byte field of the entry's central directory header (offset 8:
    flags; 24: uncompressed size), as a hand-made or tampered zip would have it."""
    data = bytearray(path.read_bytes())
    entry = data.rfind(b"PK\x01\x02")
    assert data[entry + 46:entry + 46 + len(name)] == name.encode()
    width = 2 if offset == 8 else 4
    data[entry + offset:entry + offset + width] = value.to_bytes(width, "little")
    path.write_bytes(bytes(data))


def test_encrypted_duplicate_and_bzip2_entries_are_refused(tmp_path):
    encrypted = cases_zip(tmp_path / "a.zip", {"secret.png": b"x"})
    set_central_field(encrypted, "secret.png", 8, 0x1)
    message = staged_or_refused(encrypted, tmp_path)
    assert "the entry 'secret.png' is encrypted" in message

    twice = tmp_path / "b.zip"
    with pytest.warns(UserWarning, match="Duplicate name"):
        cases_zip(twice, infos=[(zipfile.ZipInfo("cases.jsonl"), b'{"prompt": "other"}')])
    (tmp_path / "staging").rmdir()
    message = staged_or_refused(twice, tmp_path)
    assert message == ("b.zip: the entry 'cases.jsonl' appears twice; make the zip again with "
                       "each file once.")

    bzip = tmp_path / "c.zip"
    with zipfile.ZipFile(bzip, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("cases.jsonl", b'{"prompt": "hi"}')
    (tmp_path / "staging").rmdir()
    assert "is compressed with method 12; phi4ui reads stored or deflated entries" in \
        staged_or_refused(bzip, tmp_path)


def test_a_file_and_a_folder_of_one_name_are_refused(tmp_path):
    archive = cases_zip(tmp_path / "clash.zip", {"img/cat.png": b"x", "img": b"y"})
    assert staged_or_refused(archive, tmp_path) == (
        "clash.zip: the entry 'img' cannot be unpacked (File exists); make the zip again.")

    archive = cases_zip(tmp_path / "clash2.zip", {"img": b"y", "img/sub/": b""})
    (tmp_path / "staging").rmdir()
    assert "the entry 'img/sub' cannot be unpacked" in staged_or_refused(archive, tmp_path)


def test_a_zip_with_too_many_entries_is_refused_before_unpacking(tmp_path):
    entries = {f"img/{n}.txt": b"" for n in range(MAX_ENTRIES)}
    message = staged_or_refused(cases_zip(tmp_path / "many.zip", entries), tmp_path)
    assert message == (f"many.zip holds {MAX_ENTRIES + 1:,} entries (or a table of contents "
                       f"that large); phi4ui accepts at most {MAX_ENTRIES:,}. Upload fewer "
                       "files.")


def _zeros_zip(path: Path, megabytes: int, name: str = "img/blank.png") -> Path:
    """A zip holding `megabytes` MiB of zeros in one entry, written in chunks."""
    cases_zip(path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive, \
            archive.open(name, "w", force_zip64=True) as entry:
        chunk = bytes(1 << 20)
        for _ in range(megabytes):
            entry.write(chunk)
    return path


def test_a_zip_bomb_is_stopped_by_its_ratio_while_streaming_with_little_memory(tmp_path):
    archive = _zeros_zip(tmp_path / "bomb.zip", 300)
    assert archive.stat().st_size < 1_000_000  # 300 MiB inside

    tracemalloc.start()
    try:
        message = staged_or_refused(archive, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert message == ("bomb.zip: the entry 'img/blank.png' unpacks to more than 200 times "
                       "its compressed size, the most phi4ui accepts (a zip bomb?); nothing "
                       "of the archive was kept.")
    assert peak < 32 << 20, f"unpacking took {peak / 1e6:.0f} MB of memory"


def test_a_zip_whose_files_add_up_past_the_cap_is_refused(tmp_path):
    noise = os.urandom(3 << 20)  # does not compress, so the ratio says nothing
    archive = cases_zip(tmp_path / "big.zip", {"a.png": noise, "b.png": noise})
    message = staged_or_refused(archive, tmp_path, Limits(unpacked_bytes=4 << 20))
    assert message == ("big.zip would unpack to 6.0 MiB, more than 4.0 MiB, the most phi4ui "
                       "accepts. Upload fewer or smaller files.")


def test_sizes_are_counted_as_the_bytes_come_not_as_declared(tmp_path):
    """The end record and each entry's header declare sizes; a lie in them changes nothing."""
    archive = cases_zip(tmp_path / "lie.zip", {"blank.png": bytes(4 << 20)})
    set_central_field(archive, "blank.png", 24, 1)

    message = staged_or_refused(archive, tmp_path)
    assert message.startswith("lie.zip: the entry 'blank.png' is damaged (")
    assert message.endswith("); make the zip again.")

    # A read that passes its own cap stops there, whatever the archive declares.
    with CheckedZip(cases_zip(tmp_path / "doc.zip", {"big.json": os.urandom(3 << 20)})) as z, \
            pytest.raises(ArchiveRefused, match=r"'big\.json' is larger than 1\.0 MiB"):
        z.read("big.json", 1 << 20)


def test_a_nested_zip_stays_a_file_and_is_never_opened(tmp_path):
    inner = _zeros_zip(tmp_path / "inner.zip", 64, name="huge.png")
    archive = cases_zip(tmp_path / "outer.zip", {"more/inner.zip": inner.read_bytes()})
    folder = tmp_path / "staging"
    folder.mkdir()

    staged = stage_upload([archive], folder)

    assert files_under(folder) == {"cases.jsonl", "more", "more/inner.zip"}
    assert (folder / "more/inner.zip").read_bytes() == inner.read_bytes()
    assert read_cases(staged, confine_to=folder).cases[0].error is None


def test_flat_uploads_keep_only_their_own_names(tmp_path):
    source = tmp_path / "up"
    source.mkdir()
    cases = source / "cases.jsonl"
    cases.write_text(json.dumps({"prompt": "hi"}) + "\n")
    folder = tmp_path / "staging"
    folder.mkdir()
    assert stage_upload([str(cases)], folder) == folder / "cases.jsonl"
    with pytest.raises(CaseFileError, match="'/' is not a usable file name"):
        stage_upload(["/"], tmp_path / "other")


# ---------------------------------------------------------------- case files in the page

def _page_cases(tmp_path: Path, media: list[str]) -> tuple[Path, list[Case]]:
    staged = tmp_path / "staging"
    staged.mkdir(exist_ok=True)
    write_image(staged, "cat.png")
    path = staged / "cases.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": "What?", "image": m}) for m in media))
    return staged, read_cases(path, loose_media=True, confine_to=staged).cases


def test_page_cases_cannot_name_server_files_and_cannot_tell_if_they_exist(tmp_path):
    (tmp_path / "secret.png").write_bytes(image_bytes())
    (tmp_path / "elsewhere").mkdir()
    write_image(tmp_path / "elsewhere", "real.png")
    existing = ["/etc/hostname", "../secret.png", str(tmp_path / "elsewhere/real.png"),
                "../elsewhere/real.png", "~/.bashrc"]
    absent = ["/etc/no-such-file", "../no-such.png", str(tmp_path / "elsewhere/none.png"),
              "../elsewhere/none.png", "~/no-such-file"]

    _, cases = _page_cases(tmp_path, [*existing, *absent, "cat.png", "sub/../cat.png"])

    errors = [c.error for c in cases]
    for number, given in enumerate([*existing, *absent], 1):
        shown = given if len(given) <= 80 else given[:79] + "…"  # long paths are cut short
        assert errors[number - 1] == f"line {number}: image '{shown}' {NOT_UPLOADED}"
    assert errors[-2:] == [None, None]
    assert cases[-1].files == (str((tmp_path / "staging/cat.png").resolve()),)
    assert cases[-1].images == ("sub/../cat.png",)  # shown as given, not where it lies


def test_the_page_loads_uploaded_cases_confined_to_their_staging_folder(tmp_path):
    from phi4ui.page.batch_tab import load_cases as _load_cases

    upload = tmp_path / "upload"
    upload.mkdir()
    (tmp_path / "secret.png").write_bytes(image_bytes())
    cases = upload / "cases.jsonl"
    cases.write_text("\n".join(json.dumps({"prompt": "p", "image": i})
                               for i in ("/etc/hostname", "../secret.png", "cat.png")))
    image = write_image(upload, "cat.png")
    with staging.job_folder("batch") as folder:
        loaded = _load_cases([str(cases), str(image)], 10, folder)
        assert [c.error for c in loaded.cases] == [
            f"line 1: image '/etc/hostname' {NOT_UPLOADED}",
            f"line 2: image '../secret.png' {NOT_UPLOADED}", None]
        assert loaded.cases[2].files[0].startswith(str(folder))
        assert loaded.cases[2].images == ("cat.png",) and loaded.source == "cases.jsonl"
    assert not folder.exists()


def test_the_command_line_still_reads_files_anywhere(tmp_path):
    image = write_image(tmp_path, "anywhere.png")
    (tmp_path / "cases").mkdir()
    path = tmp_path / "cases" / "cases.jsonl"
    path.write_text(json.dumps({"prompt": "p", "image": str(image)}) + "\n"
                    + json.dumps({"prompt": "p", "image": "../anywhere.png"}) + "\n")
    cases = read_cases(path).cases
    assert [c.files for c in cases] == [(str(image),), (str(image),)]
    assert [c.images for c in cases] == [(str(image),), ("../anywhere.png",)]
    assert [c.error for c in cases] == [None, None]


# ---------------------------------------------------------------- bundles

def _bundle(tmp_path: Path) -> tuple[Path, Store]:
    """A real bundle of one recorded answer with an image, made without an engine."""
    image = write_image(tmp_path, "scene.png", size=(64, 48))
    store = Store(tmp_path / "answers.db")
    recorded = store.add_answer(record_for("What is this?", (image,)))
    path = bundle.export_bundle(store, [recorded.answer_id], tmp_path / "chat.zip")
    return path, store


def _rewrite(path: Path, change_document=None, change_media=None) -> Path:
    """A copy of the bundle with bundle.json and/or the media bytes changed."""
    changed = path.with_name("changed.zip")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(changed, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "bundle.json" and change_document:
                document = json.loads(data)
                change_document(document["records"][0])
                data = json.dumps(document).encode()
            elif item.filename.startswith("media/") and change_media:
                data = change_media(data)
            target.writestr(item, data)
    return changed


def _read_refused(path: Path, tmp_path: Path, **kwargs) -> str:
    """Reads the bundle into a folder three levels down, expecting a refusal; checks that
    nothing stayed there and nothing was written anywhere else under `tmp_path`."""
    folder = tmp_path / "deep" / "er" / "extracted"
    before = files_under(tmp_path)
    with pytest.raises(BundleError) as refused:
        bundle.read_bundle(path, folder, **kwargs)
    assert not folder.exists() or files_under(folder) == set()
    made = {"deep", "deep/er", "deep/er/extracted"}
    assert files_under(tmp_path) - before <= made, "nothing written elsewhere"
    return str(refused.value)


def _set_media(**values):
    def change(record):
        record["media"][0].update(values)
    return change


@pytest.mark.parametrize("sha256", ["../../x", "{tmp}/abs", "../../../usr/lib/evil.pth",
                                    "A" * 64, "g" * 64, 64])
def test_a_bundle_whose_sha256_is_a_path_is_refused(tmp_path, sha256):
    """The media file itself is a real entry: only the hash names a place to write."""
    path, _ = _bundle(tmp_path)
    if isinstance(sha256, str):
        sha256 = sha256.replace("{tmp}", str(tmp_path))
    changed = _rewrite(path, _set_media(sha256=sha256))
    message = _read_refused(changed, tmp_path)
    assert message == ("changed.zip: record 1 in bundle.json: a medium needs a sha256 (64 "
                       "lowercase hex digits), a kind (image or audio) and a name.")
    assert not (tmp_path / "abs").exists() and not (tmp_path / "usr").exists()


@pytest.mark.parametrize("file", ["media/../../evil.png", "evil.pth", "media/{sha}.pth",
                                  "media/{other}.png", "/etc/hostname", 7])
def test_a_bundle_media_file_must_be_named_by_its_hash(tmp_path, file):
    path, _ = _bundle(tmp_path)
    with zipfile.ZipFile(path) as archive:
        sha = json.loads(archive.read("bundle.json"))["records"][0]["media"][0]["sha256"]
    if isinstance(file, str):
        file = file.format(sha=sha, other="0" * 64)
    message = _read_refused(_rewrite(path, _set_media(file=file)), tmp_path)
    assert message == (f"changed.zip: record 1 in bundle.json: the image file must be media/"
                       f"{sha}<suffix> with an image suffix, not {str(file)!r}.")


def test_a_bundle_whose_media_bytes_were_changed_is_refused(tmp_path):
    path, _ = _bundle(tmp_path)
    changed = _rewrite(path, change_media=lambda _: image_bytes(size=(64, 49)))
    message = _read_refused(changed, tmp_path)
    assert message.startswith("changed.zip: record 1 in bundle.json: the bytes of media/")
    assert message.endswith(".png do not have the SHA-256 it is named by (the file was "
                            "changed after export); nothing was replayed.")


def test_a_bundle_display_name_never_becomes_a_path(tmp_path):
    path, _ = _bundle(tmp_path)
    changed = _rewrite(path, _set_media(name="../../../site-packages/evil.pth"))
    opened = bundle.read_bundle(changed, tmp_path / "extracted")
    [medium] = opened.records[0].media
    source = Path(medium.source)
    assert source.parent.parent == tmp_path / "extracted" and source.name == "evil.png"
    assert medium.name == "../../../site-packages/evil.pth"  # shown, never used as a path
    assert hashlib.sha256(source.read_bytes()).hexdigest() == medium.sha256
    assert not (tmp_path / "site-packages").exists()


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r.update(id=5), "'id' must be text, not a whole number."),
    (lambda r: r.update(turns="hello"), "'turns' must be a list, not text."),
    (lambda r: r.update(media={"a": 1}), "'media' must be a list, not an object."),
    (lambda r: r.update(adapter="../evil"), "'adapter' must be vision, speech or null."),
    (lambda r: r.update(notes=[1]), "'notes' must be a list of text."),
    (lambda r: r.update(sampling=[0.5]), "'sampling' must be an object, not a list."),
    (lambda r: r.update(replay_of=["x"]), "'replay_of' must be text or null, not a list."),
    (lambda r: r["turns"][0].update(role="system"),
     "turn 1 must be an object with a role (user or assistant) and a list of parts."),
    (lambda r: r["turns"][0]["parts"].append({"type": "image", "sha256": "../x"}),
     "turn 1 has a part that is neither text nor an image or audio named by its SHA-256."),
    (lambda r: r["media"][0].update(kind="script"), "a medium needs a sha256"),
    (lambda r: r.pop("prompt"), "is incomplete: it has no 'prompt'."),
])
def test_malformed_records_are_reported_not_crashed_on(tmp_path, change, message):
    path, _ = _bundle(tmp_path)
    refused = _read_refused(_rewrite(path, change), tmp_path)
    assert refused.startswith("changed.zip: record 1 in bundle.json")
    assert refused.endswith(message) or message in refused


@pytest.mark.parametrize(("document", "message"), [
    ({"format": "phi4ui-bundle", "format_version": "1", "records": []}, "no format_version"),
    ({"format": "phi4ui-bundle", "format_version": 1, "records": {}}, "no list of records"),
    ({"format": "phi4ui-bundle", "format_version": 1, "records": [7]}, "is not an object"),
    ("[" * 100_000, "not valid JSON"),
])
def test_malformed_documents_are_reported(tmp_path, document, message):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("bundle.json", document if isinstance(document, str)
                         else json.dumps(document))
    assert message in _read_refused(path, tmp_path)


def test_a_bundle_with_a_link_or_a_bomb_is_refused(tmp_path):
    path, _ = _bundle(tmp_path)
    linked = tmp_path / "linked.zip"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(linked, "w") as target:
        for item in source.infolist():
            target.writestr(item, source.read(item))
        target.writestr(unix_entry("media/evil.png", stat.S_IFLNK), "/etc/passwd")
    assert "the entry 'media/evil.png' is a symbolic link" in _read_refused(linked, tmp_path)

    bombed = _rewrite(path, change_media=lambda _: bytes(8 << 20))
    with zipfile.ZipFile(bombed, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("padding.bin", bytes(8 << 20))
    message = _read_refused(bombed, tmp_path, limits=Limits(unpacked_bytes=4 << 20))
    assert message == ("changed.zip would unpack to 16.0 MiB, more than 4.0 MiB, the most "
                       "phi4ui accepts. Upload fewer or smaller files.")


def test_a_tampered_record_never_reaches_the_engine_and_other_media_are_caught(tmp_path):
    """Replay's own check still stops a request whose media differ from the record."""
    image = write_image(tmp_path, "a.png", size=(64, 48))
    other = write_image(tmp_path, "b.png", size=(64, 49))
    original = record_for("What is this?", (image,))
    with pytest.raises(ReplayMismatch, match="the media differ from the recorded ones"):
        check_same(original, request_with("What is this?", (other,)))


# ---------------------------------------------------------------- staging folders

def test_job_folders_live_under_one_private_root_and_go_when_the_job_ends(private_temp):
    with staging.job_folder("batch") as folder:
        (folder / "cases.jsonl").write_text("{}")
        assert folder.parent == private_temp / f"phi4ui-staging-{os.getuid()}"
        assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    assert not folder.exists()

    with pytest.raises(RuntimeError), staging.job_folder("replay") as failed:
        raise RuntimeError("the replay failed")
    assert not failed.exists()


def test_a_stopped_run_removes_its_folder_too():
    """The page's batch holds its folder in an async generator; Stop cancels it."""
    seen: list[Path] = []

    async def run() -> None:
        async def updates():
            with staging.job_folder("batch") as folder:
                seen.append(folder)
                while True:
                    yield folder
                    await asyncio.sleep(0.01)

        async def consume() -> None:
            async for _ in updates():
                pass

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert seen and not seen[0].exists()


def test_the_staging_root_is_refused_when_it_is_a_link(private_temp, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (private_temp / f"phi4ui-staging-{os.getuid()}").symlink_to(target)
    with pytest.raises(Exception, match="is not a private folder of this user"):
        staging.new_folder("export")
    assert list(target.iterdir()) == []


def _ended_process() -> tuple[int, int]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    started = staging._started(child.pid)
    child.kill()
    child.wait()
    return child.pid, started


def test_the_sweep_removes_leftovers_and_keeps_what_is_in_use(private_temp):
    root = staging.root()
    running = staging.new_folder("batch")
    fresh_export = staging.new_folder("export")
    old_export = staging.new_folder("export")
    pid, started = _ended_process()
    ended = root / f"batch-{pid}-{started}-abcdefgh"
    reused_pid = root / f"replay-{os.getpid()}-{started}-abcdefgh"  # same pid, other start
    old_legacy = private_temp / "phi4ui-batch-1234abcd"
    new_legacy = private_temp / "phi4ui-export-5678efgh"
    unrelated = private_temp / "other-tool-folder"
    for folder in (ended, reused_pid, old_legacy, new_legacy, unrelated):
        folder.mkdir()
        (folder / "file.png").write_bytes(b"x")
    hours_ago = time.time() - 2 * staging.EXPORT_KEEP_S
    for folder in (old_export, old_legacy, unrelated):
        os.utime(folder, (hours_ago, hours_ago))

    removed = staging.sweep()

    assert set(removed) == {ended, reused_pid, old_export, old_legacy}
    assert running.exists() and fresh_export.exists()
    assert new_legacy.exists() and unrelated.exists()


def test_the_server_sweeps_at_start(private_temp, engine_settings):
    from phi4ui.engines.embedded import EmbeddedEngine
    from phi4ui.web.server import build_server

    pid, started = _ended_process()
    leftover = staging.root() / f"batch-{pid}-{started}-abcdefgh"
    leftover.mkdir()
    settings = dataclasses.replace(engine_settings, db_path=str(private_temp / "a.db"))
    build_server(settings, EmbeddedEngine(settings))  # built, not started
    assert not leftover.exists()


def test_a_replay_from_the_command_line_leaves_no_folder(tmp_path, capsys):
    path, _ = _bundle(tmp_path)
    changed = _rewrite(path, _set_media(sha256="../../x"))
    assert replay_command.main([str(changed), "--record", "false"]) == 2
    assert "a medium needs a sha256" in capsys.readouterr().err
    assert list(staging.root().iterdir()) == []


def test_the_page_replay_report_names_a_bad_bundle(tmp_path):
    from phi4ui.page.replay_panel import replay_report as _replay_report

    path, store = _bundle(tmp_path)
    changed = _rewrite(path, change_media=lambda _: b"changed")

    async def report() -> list[str]:
        with staging.job_folder("replay") as folder:
            shown = [line async for line in _replay_report(None, store, changed, folder)]  # type: ignore[arg-type]
            assert files_under(folder) == set()
        return shown

    [shown] = [line.replace("\\", "") for line in asyncio.run(report())]  # Markdown escapes
    assert shown.startswith("⚠️ changed.zip: record 1 in bundle.json: the bytes of media/")
    assert list(staging.root().iterdir()) == []


# ---------------------------------------------------------------- CSV

@pytest.mark.parametrize(("value", "written"), [
    ("=1+1", "'=1+1"), ("+x", "'+x"), ("-x", "'-x"), ("@x", "'@x"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
    ("plain", "plain"), ("", ""), ("-3.5", "-3.5"), ("+1e3", "+1e3"),
    (-3.5, -3.5), (12, 12), (None, None), (True, True),
])
def test_csv_cells_that_would_be_formulas_are_neutralised(value, written):
    assert safe_cell(value) == written


def test_batch_results_csv_is_safe_to_open(tmp_path):
    case = Case(1, "line 1", "=cmd", prompt="=1+1", expected="@SUM(A1)", tags=("-x",))
    run = BatchRun("b", "cases.jsonl", BatchOptions(), [
        CaseResult(case, answer="+x", error=None),
        CaseResult(Case(2, "line 2", "2", prompt="fine"), error="-oops"),
    ], batch.summarize([], 1.0))
    csv_path, _ = batch.write_results(run, tmp_path / "results")
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert (rows[0]["id"], rows[0]["prompt"], rows[0]["expected"], rows[0]["tags"],
            rows[0]["answer"]) == ("'=cmd", "'=1+1", "'@SUM(A1)", "'-x", "'+x")
    assert rows[1]["error"] == "'-oops" and rows[1]["case"] == "2"
    assert rows[0]["case"] == "1" and rows[0]["ttft_s"] == ""


# ---------------------------------------------------------------- the page, end to end

@pytest.fixture(scope="module")
def page_app(checkpoint: Path, vllm_server, tmp_path_factory: pytest.TempPathFactory):
    """The real app in its own process, on the tests' shared vLLM server, with a system temp
    folder of its own to watch."""
    from tests.support.apprun import start_app

    scratch = tmp_path_factory.mktemp("staging-app")
    (scratch / "temp").mkdir()
    (scratch / "temp" / "secret.png").write_bytes(image_bytes((64, 48)))
    app = start_app(checkpoint, scratch, *vllm_server.app_flags(),
                    env={"TMPDIR": str(scratch / "temp")})
    yield app
    app.stop()


def _page_staging(app) -> list[str]:
    root = app.scratch / "temp" / f"phi4ui-staging-{os.getuid()}"
    return sorted(p.name.split("-")[0] for p in root.iterdir())


@pytest.mark.engine
def test_a_page_batch_refuses_server_files_and_leaves_only_its_downloads(page_app):
    from tests.support.pageclient import PageClient

    client = PageClient(page_app.url)
    lines = [{"id": "ok", "prompt": "Say hi."},
             {"id": "etc", "prompt": "What is this?", "image": "/etc/hostname"},
             {"id": "up", "prompt": "What is this?", "image": "../../secret.png"}]
    cases = client.upload("cases.jsonl", "\n".join(map(json.dumps, lines)).encode())
    run = client.dependency("batch-run", "click")

    result = client.call(run, [[cases], 1, 16, 0.0, "Be brief."])

    assert result.success, result.messages
    shown = json.dumps(result.data).replace("\\\\", "")  # Markdown escapes
    assert "cases 3: 1 answered, 2 errors" in shown
    assert f"line 2: image '/etc/hostname' {NOT_UPLOADED}" in shown
    assert f"line 3: image '../../secret.png' {NOT_UPLOADED}" in shown
    assert _page_staging(page_app) == ["export"], "the staged upload went with the run"
    client.close()


@pytest.mark.engine
def test_a_page_replay_of_a_hostile_bundle_is_refused_and_leaves_nothing(page_app, tmp_path):
    from tests.support.pageclient import PageClient

    path, _ = _bundle(tmp_path)
    hostile = _rewrite(path, _set_media(sha256="../../../../x"))
    client = PageClient(page_app.url)
    before = _page_staging(page_app)
    bundle_file = client.upload("hostile.zip", hostile.read_bytes())

    result = client.call(client.dependency("replay-run", "click"), [bundle_file])

    assert result.success, result.messages
    assert "a medium needs a sha256" in json.dumps(result.data).replace("\\\\", "")
    assert _page_staging(page_app) == before
    assert not (page_app.scratch / "temp" / "x").exists()
    client.close()


@pytest.mark.engine
def test_a_page_batch_with_a_lone_surrogate_line_runs_to_its_end_naming_media_as_given(
        page_app):
    from tests.support.pageclient import PageClient

    client = PageClient(page_app.url)
    lines = ['{"id": "bad", "prompt": "\\ud800"}',
             json.dumps({"id": "cat", "prompt": "What is this?", "image": "img/cat.png"}),
             *(json.dumps({"id": f"t{n}", "prompt": f"Say {n}."}) for n in range(8))]
    cases = client.upload("cases.jsonl", "\n".join(lines).encode())
    image = client.upload("cat.png", image_bytes((64, 48)))
    run = client.dependency("batch-run", "click")

    result = client.call(run, [[cases, image], 4, 16, 0.0, "Be brief."])

    assert result.success, result.messages
    shown = json.dumps(result.data).replace("\\\\", "")  # Markdown escapes
    assert "Done." in shown and "cases 10: 9 answered, 1 errors" in shown
    assert "line 1: 'prompt' holds ud800 at character 1" in shown
    assert "/batch-" not in shown, "no staged upload's path"
    client.close()
