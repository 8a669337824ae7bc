"""What browsers and phones record, decoded with PyAV: real files encoded on the spot."""

import time
import tracemalloc

import numpy as np
import pytest

from phi4ui.core.audio import SAMPLE_RATE, PreparedAudio, audio_token_count
from phi4ui.core.media import MediaLimits, prepare
from phi4ui.errors import BadInput
from tests.support.mediafiles import (
    FRAME_SAMPLES,
    encode_audio,
    encode_audio_tracks,
    encode_long_silence,
    encode_video,
    write_audio,
)

LIMITS = MediaLimits(audio_min_seconds=0.3, audio_max_seconds=60.0)


@pytest.mark.parametrize(
    ("name", "container", "codec", "rate"),
    [
        ("chrome.webm", "webm", "libopus", 48_000),  # Chrome's and Firefox's MediaRecorder
        ("voice.ogg", "ogg", "libopus", 48_000),  # messaging apps' voice notes
        ("voice.opus", "opus", "libopus", 48_000),
        ("safari.m4a", "mp4", "aac", 44_100),  # Safari's MediaRecorder
        ("phone.m4a", "ipod", "aac", 48_000),  # phones' voice recorders
        ("song.mp3", "mp3", "libmp3lame", 44_100),
        ("take.flac", "flac", "flac", 44_100),
    ],
)
def test_recorded_formats_decode_to_their_length_and_rate(tmp_path, name, container, codec,
                                                          rate):
    path = encode_audio(tmp_path, name, container=container, codec=codec, seconds=2.5,
                        rate=rate, channels=2)
    item = prepare(path, LIMITS)
    assert isinstance(item, PreparedAudio)
    assert item.samples.dtype == np.float32 and item.samples.ndim == 1
    assert item.original_rate == rate and item.original_channels == 2
    assert abs(item.seconds - 2.5) <= FRAME_SAMPLES[codec] / rate
    assert item.tokens == audio_token_count(len(item.samples))
    assert f"{name}: resampled from {rate} Hz to {SAMPLE_RATE} Hz" in item.notes
    assert 0.2 < np.sqrt(np.mean(item.samples[SAMPLE_RATE // 2:-SAMPLE_RATE // 2] ** 2)) < 0.23


@pytest.mark.parametrize("codec", ["pcm_u8", "pcm_s24le", "pcm_f64le", "pcm_mulaw",
                                   "adpcm_ms"])
def test_wav_sample_formats_all_decode(tmp_path, codec):
    path = encode_audio(tmp_path, f"{codec}.wav", container="wav", codec=codec, seconds=1.0,
                        rate=16_000)
    item = prepare(path, LIMITS)
    assert abs(item.seconds - 1.0) < 0.07  # ADPCM blocks round the end up


def test_two_hour_recording_is_refused_after_decoding_only_the_limit(tmp_path):
    """A streamed WebM, as Chrome records it, does not say how long it is, so the decoder
    finds out by decoding. All of it would be 7200 s x 48 kHz x 4 bytes = 1.4 GB of samples
    and seconds of work; stopping at the 60 s limit holds about 12 MB."""
    path = encode_long_silence(tmp_path, "meeting.webm", seconds=7200)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(BadInput) as caught:
            prepare(path, LIMITS)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(caught.value) == ("meeting.webm is longer than 1 min; the longest accepted is "
                                 "1 min (60 s). Trim it or record a shorter clip.")
    limit_in_samples = 60 * 48_000 * 4
    assert peak < 3 * limit_in_samples + path.stat().st_size
    assert elapsed < 5


def test_a_200_s_clip_is_refused_with_its_length_and_the_limit(tmp_path):
    path = encode_audio(tmp_path, "weather.m4a", container="ipod", codec="aac", seconds=200,
                        rate=8_000, bit_rate=16_000)
    with pytest.raises(BadInput) as caught:
        prepare(path, MediaLimits(audio_max_seconds=180.0))
    assert str(caught.value) == ("weather.m4a is 3 min 20 s long; the longest accepted is "
                                 "3 min (180 s). Trim it or record a shorter clip.")


def test_a_clip_just_over_the_limit_says_by_how_much(tmp_path):
    path = write_audio(tmp_path, "almost.wav", seconds=60.4, rate=8_000)
    with pytest.raises(BadInput, match=r"almost.wav is 1 min 0.4 s long; the longest "
                                       r"accepted is 1 min \(60 s\)"):
        prepare(path, LIMITS)


def test_a_clip_of_exactly_the_limit_is_accepted(tmp_path):
    path = encode_audio(tmp_path, "full.webm", container="webm", codec="libopus", seconds=60.0,
                        rate=48_000, bit_rate=6_000)
    assert prepare(path, LIMITS).seconds == pytest.approx(60.0, abs=0.001)


def test_a_text_file_named_m4a_is_refused_with_what_works(tmp_path):
    path = tmp_path / "notes.m4a"
    path.write_text("Remember to buy milk.\n" * 20)
    with pytest.raises(BadInput) as caught:
        prepare(path, LIMITS)
    message = str(caught.value)
    assert message.startswith("notes.m4a is not audio that can be read")
    assert "WebM" in message and "M4A" in message and "MP3" in message


def test_a_video_without_sound_is_refused_as_such(tmp_path):
    path = encode_video(tmp_path, "screen.webm")
    with pytest.raises(BadInput) as caught:
        prepare(path, LIMITS)
    assert str(caught.value).startswith("screen.webm holds video but no sound: it has no "
                                        "audio track. Attach a recording with sound;")


def test_of_several_audio_tracks_the_first_is_used_with_a_note(tmp_path):
    item = prepare(encode_audio_tracks(tmp_path, "interview.webm", [1.0, 2.0]), LIMITS)
    assert item.seconds == pytest.approx(1.0, abs=0.02)
    assert "interview.webm: used the first of its 2 audio tracks" in item.notes


def test_a_truncated_m4a_is_refused_as_damaged(tmp_path):
    path = encode_audio(tmp_path, "cut.m4a", container="ipod", codec="aac", seconds=1.0)
    path.write_bytes(path.read_bytes()[:-600])  # the index (moov) sits at the end
    with pytest.raises(BadInput, match=r"cut\.m4a holds sound that cannot be decoded: the file "
                                       r"is damaged or its audio encoding is not supported"):
        prepare(path, LIMITS)


def test_an_unknown_audio_encoding_is_refused_as_such(tmp_path):
    path = write_audio(tmp_path, "odd.wav", seconds=1.0, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    format_tag = data.index(b"fmt ") + 8
    data[format_tag:format_tag + 2] = (0x1234).to_bytes(2, "little")  # no codec has this tag
    path.write_bytes(bytes(data))
    with pytest.raises(BadInput, match=r"odd\.wav holds sound that cannot be decoded: the file "
                                       r"is damaged or its audio encoding is not supported\. "
                                       r"Convert it"):
        prepare(path, LIMITS)
