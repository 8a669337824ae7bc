import numpy as np
import pytest
from PIL import Image

from phi4ui.errors import BadInput
from phi4ui.media import (
    SAMPLE_RATE,
    MediaLimits,
    PreparedAudio,
    PreparedImage,
    audio_token_count,
    image_token_count,
    prepare,
)
from tests.mediafiles import write_audio, write_image

LIMITS = MediaLimits(image_max_pixels=1_000_000, dynamic_hd=4, audio_min_seconds=0.3,
                     audio_max_seconds=60.0, upload_max_bytes=80_000_000)


@pytest.mark.parametrize(
    ("size", "dynamic_hd", "tokens"),
    [
        ((640, 480), 1, 477),  # the worked example: one crop and the global view
        ((448, 448), 16, 273 + 256 + 16),
        ((896, 448), 16, 273 + 512 + 16),
    ],
)
def test_image_token_count(size, dynamic_hd, tokens):
    assert image_token_count(*size, dynamic_hd=dynamic_hd) == tokens


def test_audio_token_count_is_one_per_80_ms():
    assert audio_token_count(2 * SAMPLE_RATE) == 25
    assert audio_token_count(60 * SAMPLE_RATE) == 750


def test_image_is_rgb_with_its_token_cost(tmp_path):
    item = prepare(write_image(tmp_path, "rgba.png", mode="RGBA", size=(300, 200)), LIMITS)
    assert isinstance(item, PreparedImage)
    assert item.image.mode == "RGB"
    assert item.size == (300, 200)
    assert item.tokens == image_token_count(300, 200, dynamic_hd=4)
    assert len(item.sha256) == 64


def test_exif_orientation_is_applied(tmp_path):
    path = write_image(tmp_path, "turned.jpg", fmt="JPEG", size=(200, 100), exif_orientation=6)
    assert prepare(path, LIMITS).size == (100, 200)


def test_large_jpeg_is_downscaled_past_the_pixel_limit(tmp_path):
    path = write_image(tmp_path, "big.jpg", fmt="JPEG", size=(4000, 3000))
    item = prepare(path, LIMITS)
    width, height = item.size
    assert width * height <= LIMITS.image_max_pixels
    assert abs(width / height - 4 / 3) < 0.01
    assert item.original_size == (4000, 3000)
    assert any("downscaled" in note for note in item.notes)


@pytest.mark.parametrize("size", [(4000, 3000), (2100, 1600), (8000, 6000)])
def test_a_downscaled_jpeg_keeps_at_least_half_the_pixels_allowed(tmp_path, size):
    """Decoding at a reduced scale is fast, but must not throw away detail the limit allows."""
    item = prepare(write_image(tmp_path, "big.jpg", fmt="JPEG", size=size), LIMITS)
    width, height = item.size
    assert LIMITS.image_max_pixels / 2 <= width * height <= LIMITS.image_max_pixels
    assert item.tokens == image_token_count(width, height, dynamic_hd=LIMITS.dynamic_hd)


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "canvas.png"
    Image.new("1", (20000, 20000)).save(path)
    with pytest.raises(BadInput, match="megapixels"):
        prepare(path, LIMITS)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 50, "image"),
        ("notes.wav", b"this is a text file, not audio\n" * 20, "audio"),
        ("empty.wav", b"", "empty"),
        ("script.py", b"print('hi')\n", "only images and audio"),
    ],
)
def test_unusable_files_get_a_plain_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadInput) as caught:
        prepare(path, LIMITS)
    assert name in str(caught.value)
    assert reason in str(caught.value)


def test_upload_over_the_size_limit_is_refused(tmp_path):
    path = write_image(tmp_path, "photo.png", size=(800, 800))
    with pytest.raises(BadInput, match="upload limit"):
        prepare(path, MediaLimits(upload_max_bytes=1000))


@pytest.mark.parametrize(("name", "fmt"), [("a.wav", "WAV"), ("a.flac", "FLAC"),
                                            ("a.ogg", "OGG"), ("a.mp3", "MP3")])
def test_audio_formats_decode_to_16k_mono_float32(tmp_path, name, fmt):
    path = write_audio(tmp_path, name, seconds=2.0, rate=44_100, channels=2, format=fmt)
    item = prepare(path, LIMITS)
    assert isinstance(item, PreparedAudio)
    assert item.samples.dtype == np.float32 and item.samples.ndim == 1
    assert item.original_rate == 44_100 and item.original_channels == 2
    assert abs(item.seconds - 2.0) < 0.1  # MP3 adds encoder padding
    assert item.tokens == audio_token_count(len(item.samples))
    assert any("mono" in note for note in item.notes)


@pytest.mark.parametrize("rate", [8_000, 96_000])
def test_low_and_high_rates_are_resampled_with_a_note(tmp_path, rate):
    item = prepare(write_audio(tmp_path, f"r{rate}.wav", seconds=1.0, rate=rate), LIMITS)
    assert len(item.samples) == SAMPLE_RATE
    assert any(f"from {rate} Hz" in note for note in item.notes)


def test_audio_below_8_khz_is_refused(tmp_path):
    with pytest.raises(BadInput, match="8000 Hz"):
        prepare(write_audio(tmp_path, "phone.wav", seconds=1.0, rate=4_000), LIMITS)


def test_too_short_recording_is_refused(tmp_path):
    with pytest.raises(BadInput, match="too short"):
        prepare(write_audio(tmp_path, "click.wav", seconds=0.1), LIMITS)


def test_two_hour_recording_is_refused_without_decoding_it(tmp_path):
    path = write_audio(tmp_path, "meeting.wav", seconds=7200, rate=8_000, subtype="PCM_U8")
    with pytest.raises(BadInput, match="120 min is longer than the 60 s limit"):
        prepare(path, LIMITS)
