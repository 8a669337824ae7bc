"""Recordings as Phi-4-multimodal takes them, and what each one costs.

soundfile decodes WAV, FLAC and OGG/Vorbis, PyAV (FFmpeg) everything else that browsers
and phones record (WebM/Opus, OGG/Opus, MP4/M4A/AAC, MP3); decoding stops at the length
limit, so a long file costs no more than the longest accepted. The result is mono,
16 kHz float32; its token cost follows the model's speech processor (one per 80 ms).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from phi4ui.core.figures import duration
from phi4ui.errors import BadInput

if TYPE_CHECKING:
    from av.audio.stream import AudioStream
    from av.container import InputContainer

    from phi4ui.core.media import MediaLimits

SAMPLE_RATE = 16_000
LOWEST_SAMPLE_RATE = 8_000  # the speech encoder's floor
# The model card recommends clips up to 40 s for speech recognition and translation;
# longer ones are accepted (summaries take up to 30 min) with a note.
CARD_AUDIO_SECONDS = 40.0
AUDIO_COMPRESSION = 8
WINDOW_SAMPLES = 400  # 25 ms at 16 kHz
HOP_SAMPLES = 160  # 10 ms at 16 kHz
AUDIO_THAT_WORKS = ("WAV, FLAC, MP3, OGG (Vorbis or Opus), WebM (Opus, as Chrome and Firefox "
                    "record) and M4A/MP4 (AAC, as phones and Safari record) work")
# libsndfile reads these at least as fast as FFmpeg and knows their exact length from the
# header; the rest (Opus, MP3, AAC, WebM, MP4, anything libsndfile cannot open) goes to PyAV.
SOUNDFILE_FORMATS = {("WAV", None), ("WAVEX", None), ("FLAC", None), ("OGG", "VORBIS")}
# Lengths are compared to the limits to the millisecond, the precision a refusal shows.
LENGTH_TOLERANCE = 0.001


@dataclass(frozen=True, eq=False)
class PreparedAudio:
    samples: np.ndarray = field(repr=False)
    name: str
    sha256: str
    tokens: int
    original_rate: int
    original_channels: int
    notes: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE



@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # mono float32 at `rate`
    rate: int
    channels: int
    notes: tuple[str, ...] = ()


class _TooLong(Exception):
    """Decoding passed the duration limit; `declared` is what the container claims, if anything."""

    def __init__(self, declared: float | None) -> None:
        super().__init__(declared)
        self.declared = declared


def prepare_audio_bytes(data: bytes, name: str, limits: MediaLimits) -> PreparedAudio:
    try:
        decoded = _decode_audio(data, name, limits)
    except _TooLong as too_long:
        raise BadInput(_too_long_message(name, too_long.declared, limits)) from None
    samples, rate = decoded.samples, decoded.rate
    _check_rate(name, rate)
    _check_short(name, len(samples) / rate, limits)
    if not np.isfinite(samples).all():
        raise BadInput(f"{name} contains invalid samples (not-a-number or infinite values), "
                       "so it cannot be played; export it again, e.g. as 16-bit WAV.")
    notes = list(decoded.notes)
    if decoded.channels > 1:
        notes.append(f"{name}: {decoded.channels} channels mixed to mono")
    if rate != SAMPLE_RATE:
        samples = _resample(samples, rate)
        notes.append(f"{name}: resampled from {rate} Hz to {SAMPLE_RATE} Hz")
    if (note := long_audio_note(name, len(samples) / SAMPLE_RATE)) is not None:
        notes.append(note)
    return PreparedAudio(samples=samples, name=name, sha256=hashlib.sha256(data).hexdigest(),
                         tokens=audio_token_count(len(samples)), original_rate=rate,
                         original_channels=decoded.channels, notes=tuple(notes))


def _decode_audio(data: bytes, name: str, limits: MediaLimits) -> DecodedAudio:
    decoded = _decode_with_soundfile(data, limits)
    return decoded if decoded is not None else _decode_with_pyav(data, name, limits)


def _decode_with_soundfile(data: bytes, limits: MediaLimits) -> DecodedAudio | None:
    """WAV, FLAC and OGG/Vorbis, whose headers give the exact length before any decoding;
    None for anything else, or anything libsndfile fails on, for PyAV to try."""
    import io

    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            if not _soundfile_is_fast(sound.format, sound.subtype):
                return None
            most = int(_most_samples(limits, sound.samplerate))
            if sound.frames > most:
                raise _TooLong(sound.frames / sound.samplerate)
            # A header can lie (or say nothing, as a streamed FLAC's does): read no further.
            samples = sound.read(most + 1, dtype="float32", always_2d=True)
            if len(samples) > most:
                raise _TooLong(None)
            return DecodedAudio(_mix_to_mono(samples), sound.samplerate, sound.channels)
    except (soundfile.LibsndfileError, RuntimeError, ValueError):
        return None


def _soundfile_is_fast(container: str, codec: str) -> bool:
    return (container, None) in SOUNDFILE_FORMATS or (container, codec) in SOUNDFILE_FORMATS


def _decode_with_pyav(data: bytes, name: str, limits: MediaLimits) -> DecodedAudio:
    import io

    import av

    try:
        with av.open(io.BytesIO(data), "r", metadata_errors="ignore") as container:
            stream = _first_audio_stream(container, name)
            return _decode_stream(container, stream, name, limits)
    except (av.error.FFmpegError, ValueError):  # ValueError: the format changes midway
        raise BadInput(f"{name} is not audio that can be read: it is damaged, cut short or not "
                       f"a sound file. {AUDIO_THAT_WORKS}.") from None


def _first_audio_stream(container: InputContainer, name: str) -> AudioStream:
    audio = container.streams.audio
    if not audio:
        holds = "video but no sound" if container.streams.video else "no sound"
        raise BadInput(f"{name} holds {holds}: it has no audio track. Attach a recording "
                       f"with sound; {AUDIO_THAT_WORKS}.")
    if audio[0].codec_context is None:  # an unknown codec, or a header too damaged to say
        raise BadInput(f"{name} holds sound that cannot be decoded: the file is damaged or its "
                       f"audio encoding is not supported. Convert it, e.g. to WAV or MP3; "
                       f"{AUDIO_THAT_WORKS}.")
    return audio[0]


def _decode_stream(container: InputContainer, stream: AudioStream, name: str,
                   limits: MediaLimits) -> DecodedAudio:
    """Decodes frame by frame and stops as soon as the limit is passed, so a long recording
    costs no more time or memory than one of the longest accepted length."""
    import av

    resampler = av.AudioResampler(format="fltp")  # any sample format to float, same rate
    chunks: list[np.ndarray] = []
    decoded = 0
    rate = channels = 0
    for frame in container.decode(stream):
        rate, channels = rate or frame.sample_rate, channels or frame.layout.nb_channels
        for converted in resampler.resample(frame):
            chunks.append(_mix_to_mono(converted.to_ndarray().T))
            decoded += converted.samples
        if decoded > _most_samples(limits, rate):
            raise _TooLong(_declared_seconds(container, stream))
    for converted in resampler.resample(None):
        chunks.append(_mix_to_mono(converted.to_ndarray().T))
    if not rate:
        rate = stream.codec_context.sample_rate or SAMPLE_RATE
        channels = stream.codec_context.channels or 1
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    notes: tuple[str, ...] = ()
    if len(container.streams.audio) > 1:
        notes = (f"{name}: used the first of its {len(container.streams.audio)} audio tracks",)
    return DecodedAudio(samples, rate, channels, notes)


def _most_samples(limits: MediaLimits, rate: int) -> float:
    return (limits.audio_max_seconds + LENGTH_TOLERANCE) * rate


def _declared_seconds(container: InputContainer, stream: AudioStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        import av

        return container.duration / av.time_base
    return None


def _check_rate(name: str, rate: int) -> None:
    if rate < LOWEST_SAMPLE_RATE:
        raise BadInput(f"{name} is recorded at {rate} Hz; the speech model needs at least "
                       f"{LOWEST_SAMPLE_RATE} Hz. Record or export it again at 16000 Hz "
                       "or more.")


def long_audio_note(name: str, seconds: float) -> str | None:
    """A note for a clip longer than the model card recommends for transcription."""
    if seconds <= CARD_AUDIO_SECONDS + LENGTH_TOLERANCE:
        return None
    return (f"{name}: {duration(seconds)} long; the model card recommends at most "
            f"{CARD_AUDIO_SECONDS:g} s for speech recognition and translation, so a longer "
            "clip may be transcribed less well (split it for those tasks)")


def _check_short(name: str, seconds: float, limits: MediaLimits) -> None:
    if seconds >= limits.audio_min_seconds - LENGTH_TOLERANCE:
        return
    shortest = duration(limits.audio_min_seconds)
    if seconds == 0:
        raise BadInput(f"{name} holds no sound (0 s of audio); the shortest accepted is "
                       f"{shortest}. Record again.")
    raise BadInput(f"{name} is {duration(seconds, beside=limits.audio_min_seconds)} long; "
                   f"the shortest accepted is {shortest}. Record a little longer.")


def _too_long_message(name: str, declared: float | None, limits: MediaLimits) -> str:
    limit = limits.audio_max_seconds
    longest = duration(limit)
    if limit >= 60:
        longest += f" ({limit:g} s)"
    if declared is not None and declared > limit:
        length = f"is {duration(declared, beside=limit)} long"
    else:  # decoding stopped at the limit and the file does not say how long it is
        length = f"is longer than {duration(limit)}"
    return (f"{name} {length}; the longest accepted is {longest}. "
            "Trim it or record a shorter clip.")


def _mix_to_mono(samples: np.ndarray) -> np.ndarray:
    """(frames, channels) to (frames,) float32, averaging the channels."""
    if samples.ndim == 2 and samples.shape[1] > 1:
        # A matrix-vector product: several times faster than `mean(axis=1)` on interleaved rows.
        weights = np.full(samples.shape[1], 1 / samples.shape[1], dtype=np.float32)
        return samples.astype(np.float32, copy=False) @ weights
    return np.ascontiguousarray(samples.reshape(-1), dtype=np.float32)


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    resampled: np.ndarray = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ")
    return resampled.astype(np.float32, copy=False)


def audio_token_count(num_samples: int) -> int:
    """Tokens Phi-4-MM spends on `num_samples` of 16 kHz audio (one per 80 ms)."""
    frames = (num_samples - WINDOW_SAMPLES) // HOP_SAMPLES + 1
    return max(0, math.ceil(frames / AUDIO_COMPRESSION))



@lru_cache(maxsize=16)
def audio_wav_base64(audio: PreparedAudio) -> str:
    """The clip as base64 WAV, 16 kHz mono 16-bit PCM, for an `input_audio` part."""
    import base64
    import io

    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, audio.samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
