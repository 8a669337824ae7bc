"""Images and speech in: upload, microphone, both in one turn, the camera."""

from __future__ import annotations

import base64

import pytest
from playwright.sync_api import expect

from tests.browser.chatpage import ChatPage
from tests.browser.conftest import ROOT

pytestmark = pytest.mark.browser
HOUSE = ROOT / "assets" / "house.png"  # 448x448: one crop, the cheapest image to encode
QUESTION = ROOT / "assets" / "windows_en.wav"


def test_uploaded_image_is_answered_with_the_vision_adapter(chat: ChatPage) -> None:
    chat.set_max_tokens(32)
    chat.attach(HOUSE)
    chat.type("Describe this picture.")
    expect(chat.cost).to_contain_text("1 image ·")
    expect(chat.cost).to_contain_text("prompt so far ≈")
    chat.shot("12-image-attached")

    chat.send()
    chat.wait_answers(1)
    expect(chat.page.locator("#chatbot [data-testid=user] img")).to_have_count(1)
    assert "vision adapter" in chat.statistics()[0]
    chat.shot("13-image-answer")


def test_recording_from_the_microphone(chat: ChatPage) -> None:
    chat.set_max_tokens(32)
    chat.page.locator("#mm [data-testid=microphone-button]").click()
    chat.page.get_by_label("Start recording").click()
    chat.page.wait_for_timeout(3000)
    chat.shot("14-recording")
    chat.page.get_by_label("Stop recording").click()
    chat.page.get_by_label("Attach audio").click()
    expect(chat.thumbnails).to_have_count(1)
    expect(chat.cost).to_contain_text("audio ")

    chat.send("Transcribe the audio clip into text.")
    chat.wait_answers(1)
    expect(chat.page.locator("#chatbot [data-testid=user] audio")).to_have_count(1)
    assert "speech adapter" in chat.statistics()[0]
    chat.shot("15-recording-answer")


def test_image_and_audio_in_one_turn(chat: ChatPage) -> None:
    chat.set_max_tokens(32)
    chat.attach(HOUSE, QUESTION)
    expect(chat.cost).to_contain_text("1 image ·")
    expect(chat.cost).to_contain_text("audio 3.5 s ·")

    chat.send("Answer the spoken question about the picture.")
    chat.wait_answers(1)
    statistics = chat.statistics()[0]
    assert "vision adapter" in statistics  # an image in the request selects the vision LoRA
    chat.page.locator("#chatbot .thought-group .title").first.click()
    row = chat.page.locator("#chatbot .thought-group tr").filter(has_text="Prompt tokens")
    expect(row).to_be_visible()
    counts = row.locator("td").nth(1).inner_text()  # "total (text / image / audio)"
    text, image, audio = (int(n) for n in counts.split("(")[1].rstrip(")").split("/"))
    assert text > 0 and image > 0 and audio > 0
    chat.reveal(row)
    chat.shot("16-image-and-audio-answer")


PASTE = """([name, data]) => {
  const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
  const clipboard = new DataTransfer();
  clipboard.items.add(new File([bytes], name, {type: 'image/png'}));
  document.querySelector('#mm textarea').dispatchEvent(
    new ClipboardEvent('paste', {clipboardData: clipboard, bubbles: true, cancelable: true}));
}"""


def test_a_pasted_image_is_attached(chat: ChatPage) -> None:
    chat.textbox.focus()
    chat.page.evaluate(PASTE, ["pasted.png", base64.b64encode(HOUSE.read_bytes()).decode()])
    expect(chat.thumbnails).to_have_count(1)
    expect(chat.cost).to_contain_text("1 image ·")


def test_a_photo_from_the_camera_is_attached(chat: ChatPage) -> None:
    chat.page.locator("#camera-panel").get_by_text("Camera").click()
    chat.page.get_by_text("Click to Access Webcam").click()
    chat.page.wait_for_function(  # the fake camera's first frames have arrived
        "() => (document.querySelector('#camera video') || {}).readyState >= 2")
    chat.page.locator("#camera button[aria-label='capture photo']").click()
    expect(chat.thumbnails).to_have_count(1)
    expect(chat.cost).to_contain_text("1 image ·")
    chat.shot("17-camera-photo-attached")
