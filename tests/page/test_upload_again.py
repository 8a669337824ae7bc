"""`keep_uploads_already_there`: Gradio's upload route renames each upload onto
`<upload folder>/<hash of its content>/<name>` on the event loop, also over the copy a
file sent before left there; the workaround keeps that copy instead. Run through Gradio's
own upload route on a small page, in an upload folder of the test's own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from gradio import route_utils

from phi4ui.page.gradio_workarounds import keep_uploads_already_there


@pytest.fixture
def upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    monkeypatch.setattr(route_utils, "os", os)  # Gradio's own, whatever earlier tests did
    with gr.Blocks(analytics_enabled=False) as page:
        gr.File()
    with TestClient(gr.mount_gradio_app(FastAPI(), page, path="/")) as client:
        yield client


def send(client: TestClient, name: str, content: bytes) -> Path:
    response = client.post("/gradio_api/upload", files={"files": (name, content)})
    response.raise_for_status()
    return Path(response.json()[0])


def left_in(folder: Path) -> list[Path]:
    """Files in the upload folder itself: the uploads' temporary files, if left there."""
    return [path for path in folder.iterdir() if path.is_file()]


def renames(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    done: list[str] = []
    rename = os.rename
    monkeypatch.setattr(os, "rename", lambda source, destination, *args: (
        done.append(str(destination)), rename(source, destination, *args))[1])
    return done


def test_gradio_renames_a_file_sent_again_over_its_copy(
        upload: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Gradio behaviour worked around."""
    first = send(upload, "photo.png", b"the same bytes")
    done = renames(monkeypatch)
    assert send(upload, "photo.png", b"the same bytes") == first
    assert done == [str(first)]


def test_a_file_sent_again_keeps_its_copy(upload: TestClient, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    keep_uploads_already_there()
    first = send(upload, "photo.png", b"the same bytes")
    inode = first.stat().st_ino
    done = renames(monkeypatch)
    assert send(upload, "photo.png", b"the same bytes") == first
    assert done == []
    assert first.stat().st_ino == inode and first.read_bytes() == b"the same bytes"
    assert left_in(tmp_path) == []  # the temporary file is gone
    other = send(upload, "other.png", b"other bytes")
    assert done == [str(other)] and other.read_bytes() == b"other bytes"


@pytest.mark.parametrize("there", ["link", "other size"])
def test_what_is_not_the_same_upload_is_renamed_over_as_gradio_does(
        upload: TestClient, tmp_path: Path, there: str) -> None:
    keep_uploads_already_there()
    first = send(upload, "photo.png", b"the same bytes")
    first.unlink()
    if there == "link":
        first.symlink_to(tmp_path / "elsewhere")
        (tmp_path / "elsewhere").write_bytes(b"x" * len(b"the same bytes"))
    else:
        first.write_bytes(b"longer than the upload")
    assert send(upload, "photo.png", b"the same bytes") == first
    assert not first.is_symlink() and first.read_bytes() == b"the same bytes"
    assert [path.name for path in left_in(tmp_path)] == (["elsewhere"] if there == "link"
                                                          else [])
