import numpy as np
import pytest
import soundfile
from PIL import Image

from phi4ui.core.audio import SAMPLE_RATE, PreparedAudio, audio_token_count
from phi4ui.core.images import PreparedImage, image_token_count
from phi4ui.core.media import MediaLimits, prepare
from phi4ui.errors import BadInput
from tests.support.mediafiles import image_bytes, write_audio, write_image

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
    with pytest.raises(BadInput) as caught:
        prepare(path, LIMITS)
    assert str(caught.value) == ("canvas.png is 400 megapixels; the largest image that can be "
                                 "opened safely is 100 megapixels. Scale it down below that "
                                 "and attach it again.")


def test_an_image_just_over_the_safe_size_gives_its_size(tmp_path):
    path = tmp_path / "panorama.png"
    Image.new("1", (10_010, 10_000)).save(path)
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(BadInput) as caught:
        prepare(path, LIMITS)
    assert str(caught.value).startswith("panorama.png is 10010x10000 pixels, 100.1 megapixels; "
                                        "the largest image that can be opened safely is 100 "
                                        "megapixels.")


@pytest.mark.parametrize(
    ("name", "content", "reason", "what_works"),
    [
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 50,
         "is not an image that can be read", "PNG, JPEG, WebP"),
        ("notes.wav", b"this is a text file, not audio\n" * 20,
         "is not audio that can be read", "WAV, FLAC, MP3"),
        ("empty.wav", b"", "is empty (0 bytes)", "Attach it again"),
        ("script.py", b"print('hi')\n", "is neither an image nor audio", ".png, .tif"),
    ],
)
def test_unusable_files_get_a_plain_reason(tmp_path, name, content, reason, what_works):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadInput) as caught:
        prepare(path, LIMITS)
    assert str(caught.value).startswith(f"{name} {reason}")
    assert what_works in str(caught.value)


def test_a_vanished_upload_is_named(tmp_path):
    with pytest.raises(BadInput, match=r"^gone.png is no longer on the server .* attach it "
                                       r"again\.$"):
        prepare(tmp_path / "gone.png", LIMITS)


def test_a_damaged_image_says_so_and_what_to_do(tmp_path):
    data = image_bytes(size=(400, 300), fmt="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInput) as caught:
        prepare(path, LIMITS)
    assert str(caught.value) == ("cut.png is damaged: its picture data cannot be decoded (the "
                                 "file may be cut short). Save or export it again, e.g. as PNG "
                                 "or JPEG.")


def test_upload_over_the_size_limit_is_refused(tmp_path):
    path = write_image(tmp_path, "photo.png", size=(800, 800))
    with pytest.raises(BadInput, match=r"^photo.png is 1.9 MB; the largest upload accepted is "
                                       r"0.001 MB. Send a smaller file"):
        prepare(path, MediaLimits(upload_max_bytes=1000))


@pytest.mark.parametrize(("size", "limit", "sizes"), [
    (1_040_000, 1_000_000, "is 1.04 MB; the largest upload accepted is 1 MB."),
    (2_500_000, 1_000_000, "is 2.5 MB; the largest upload accepted is 1 MB."),
    (1_000_100, 1_000_000, "is 1,000,100 bytes; the largest upload accepted is 1,000,000 bytes."),
])
def test_a_file_just_over_the_upload_limit_shows_by_how_much(tmp_path, size, limit, sizes):
    path = tmp_path / "clip.wav"
    path.write_bytes(b"\0" * size)
    with pytest.raises(BadInput, match=f"^clip.wav {sizes}"):
        prepare(path, MediaLimits(upload_max_bytes=limit))


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
    with pytest.raises(BadInput) as caught:
        prepare(write_audio(tmp_path, "phone.wav", seconds=1.0, rate=4_000), LIMITS)
    assert str(caught.value) == ("phone.wav is recorded at 4000 Hz; the speech model needs at "
                                 "least 8000 Hz. Record or export it again at 16000 Hz or more.")


@pytest.mark.parametrize(("seconds", "length"), [(0.1, "0.1 s"), (0.29, "0.29 s"),
                                                 (0.2985, "0.298 s")])
def test_too_short_recording_is_refused_with_both_lengths(tmp_path, seconds, length):
    path = write_audio(tmp_path, "click.wav", seconds=seconds, rate=32_000)
    with pytest.raises(BadInput) as caught:
        prepare(path, LIMITS)
    assert str(caught.value) == (f"click.wav is {length} long; the shortest accepted is 0.3 s. "
                                 "Record a little longer.")


def test_a_recording_without_samples_is_refused(tmp_path):
    with pytest.raises(BadInput) as caught:
        prepare(write_audio(tmp_path, "silence.wav", seconds=0.0), LIMITS)
    assert str(caught.value) == ("silence.wav holds no sound (0 s of audio); the shortest "
                                 "accepted is 0.3 s. Record again.")


def test_invalid_samples_are_refused(tmp_path):
    path = tmp_path / "nan.wav"
    samples = np.zeros(SAMPLE_RATE, dtype=np.float32)
    samples[100] = np.nan
    soundfile.write(path, samples, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(BadInput, match=r"^nan.wav contains invalid samples .* export it again"):
        prepare(path, LIMITS)


def test_two_hour_recording_is_refused_without_decoding_it(tmp_path):
    path = write_audio(tmp_path, "meeting.wav", seconds=7200, rate=8_000, subtype="PCM_U8")
    with pytest.raises(BadInput) as caught:
        prepare(path, LIMITS)
    assert str(caught.value) == ("meeting.wav is 2 h 0 min long; the longest accepted is 1 min "
                                 "(60 s). Trim it or record a shorter clip.")


def test_sixteen_bit_greys_are_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 256 * 64).reshape(64, 256).astype(np.uint16)
    path = tmp_path / "scan.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode == "I;16"
    pixels = np.asarray(prepare(path, LIMITS).image, dtype=np.float64)
    assert pixels[0, 0, 0] == 0 and pixels[-1, -1, 0] == 255
    assert pixels.mean() == pytest.approx(127.5, abs=1)


def test_cmyk_and_palette_images_keep_their_colours(tmp_path):
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(tmp_path / "print.jpg")
    palette = Image.new("P", (64, 64), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.save(tmp_path / "icon.png", transparency=0)
    assert tuple(np.asarray(prepare(tmp_path / "print.jpg", LIMITS).image)[32, 32]) == (255, 0, 0)
    icon = np.asarray(prepare(tmp_path / "icon.png", LIMITS).image)
    assert tuple(icon[0, 0]) == (255, 255, 255) and tuple(icon[32, 32]) == (255, 0, 0)


def test_an_animated_image_uses_its_first_frame_with_a_note(tmp_path):
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "lime", "blue")]
    frames[0].save(tmp_path / "wave.gif", save_all=True, append_images=frames[1:])
    item = prepare(tmp_path / "wave.gif", LIMITS)
    assert tuple(np.asarray(item.image)[0, 0]) == (255, 0, 0)
    assert "wave.gif: animated; only its first frame of 3 is used" in item.notes


@pytest.mark.parametrize(("size", "thin_side", "needed"),
                         [((1000, 6), "tall", 8), ((5, 2000), "wide", 9)])
def test_a_very_thin_image_is_refused_with_its_size_and_what_works(tmp_path, size, thin_side,
                                                                    needed):
    # Phi-4-MM's processor refuses these ("the aspect ratio is very extreme"): the engine
    # would fail on them after the upload; the page says why first.
    limits = MediaLimits(dynamic_hd=16)
    with pytest.raises(BadInput) as refusal:
        prepare(write_image(tmp_path, "strip.png", size=size), limits)
    message = str(refusal.value)
    assert f"strip.png is {size[0]}x{size[1]} pixels, too thin" in message
    assert f"at least {needed} pixels {thin_side}" in message
    padded = (size[0], needed) if thin_side == "tall" else (needed, size[1])
    assert prepare(write_image(tmp_path, "padded.png", size=padded), limits).tokens > 0


def test_the_thin_image_rule_is_the_processors():
    from phi4ui.core.images import MIN_RESIZED_SIDE, resized_size
    from phi4ui.tinymodel.remote import processing_phi4mm as processing

    sizes = [(1000, 6), (1000, 8), (5, 2000), (9, 2000), (4000, 20), (20, 9000), (3, 3)]
    for dynamic_hd in (1, 4, 16, 36):
        for width, height in sizes:
            cols, rows = processing.tile_grid(width, height, dynamic_hd)
            fitted = processing.fitted_size(width, height, cols * 448, rows * 448)
            assert resized_size(width, height, dynamic_hd=dynamic_hd) == fitted
            accepted = min(fitted) >= MIN_RESIZED_SIDE
            assert accepted == (min(fitted) >= processing.MIN_RESIZED_SIDE)
