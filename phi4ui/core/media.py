"""Uploads and recordings turned into what the model takes, and what they will cost.

Images: Pillow, EXIF orientation applied, RGB (16-bit greys scaled to 8 bits),
downscaled past a pixel limit, with a guard against decompression bombs. Audio:
soundfile for WAV, FLAC and OGG/Vorbis, PyAV (FFmpeg) for everything else that
browsers and phones record (WebM/Opus, OGG/Opus, MP4/M4A/AAC, MP3), decoded
only up to the length limit, mixed to mono and resampled to 16 kHz float32.
Token costs follow Phi-4-multimodal's processor exactly, so a prompt that will
not fit is refused before it reaches the engine. Every refusal names the file,
says what is wrong with figures that show it, and what would work.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from phi4ui.errors import BadInput

if TYPE_CHECKING:
    from av.audio.stream import AudioStream
    from av.container import InputContainer

    from phi4ui.settings import Settings

SAMPLE_RATE = 16_000
LOWEST_SAMPLE_RATE = 8_000  # the speech encoder's floor
# The model card recommends clips up to 40 s for speech recognition and translation;
# longer ones are accepted (summaries take up to 30 min) with a note.
CARD_AUDIO_SECONDS = 40.0
BOMB_PIXELS = 100_000_000  # a 50 MP phone photo passes; a 20000x20000 canvas does not

VIT_IMAGE_SIZE = 448
VIT_PATCH_SIZE = 14
TOKEN_COMPRESSION = 2
MIN_RESIZED_SIDE = 10  # the processor refuses images scaled thinner than this
AUDIO_COMPRESSION = 8
WINDOW_SAMPLES = 400  # 25 ms at 16 kHz
HOP_SAMPLES = 160  # 10 ms at 16 kHz

IMAGES_THAT_WORK = "PNG, JPEG, WebP, GIF, BMP and TIFF work"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".webm", ".aac"}

Image.MAX_IMAGE_PIXELS = BOMB_PIXELS


@dataclass(frozen=True)
class MediaLimits:
    image_max_pixels: int = VIT_IMAGE_SIZE * VIT_IMAGE_SIZE * 16
    dynamic_hd: int = 16
    audio_min_seconds: float = 0.3
    audio_max_seconds: float = 180.0
    upload_max_bytes: int = 50 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings, dynamic_hd: int) -> MediaLimits:
        return cls(image_max_pixels=settings.image_max_pixels, dynamic_hd=dynamic_hd,
                   audio_min_seconds=settings.audio_min_seconds,
                   audio_max_seconds=settings.audio_max_seconds,
                   upload_max_bytes=int(settings.upload_max_mb * 1e6))


@dataclass(frozen=True, eq=False)
class PreparedImage:
    image: Image.Image
    name: str
    sha256: str
    tokens: int
    original_size: tuple[int, int]
    notes: tuple[str, ...] = ()

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


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


Prepared = PreparedImage | PreparedAudio


def kind_of(path: str | Path) -> str:
    """'image', 'audio' or 'other', by the file's name (content is checked when decoding)."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    return "other"


def prepare(path: str | Path, limits: MediaLimits) -> Prepared:
    """Decodes and checks one upload; raises `BadInput` with a plain reason."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        raise BadInput(f"{path.name} is no longer on the server (uploads are removed after a "
                       "while); attach it again.") from None
    _check_size(path.name, stat.st_size, limits)
    kind = kind_of(path)
    if kind == "other":
        raise BadInput(f"{path.name} is neither an image nor audio, going by its name; "
                       "only these can be attached: "
                       f"{', '.join(sorted(IMAGE_SUFFIXES | AUDIO_SUFFIXES))}.")
    # Chat history hands the same files back every turn: decode each once.
    return _prepare_cached(str(path), stat.st_mtime_ns, stat.st_size, kind, limits)


@lru_cache(maxsize=64)
def _prepare_cached(path: str, _mtime_ns: int, _size: int, kind: str,
                    limits: MediaLimits) -> Prepared:
    data = Path(path).read_bytes()
    name = os.path.basename(path)
    if kind == "image":
        return prepare_image_bytes(data, name, limits)
    return prepare_audio_bytes(data, name, limits)


def _check_size(name: str, size: int, limits: MediaLimits) -> None:
    if size == 0:
        raise BadInput(f"{name} is empty (0 bytes); the upload may have failed. Attach it again.")
    if size > limits.upload_max_bytes:
        how_large, largest = _upload_sizes(size, limits.upload_max_bytes)
        raise BadInput(f"{name} is {how_large}; the largest upload accepted is {largest}. "
                       "Send a smaller file: a JPEG instead of a large PNG or TIFF, MP3 or M4A "
                       "instead of WAV, or a shorter clip.")


def _upload_sizes(size: int, limit: int) -> tuple[str, str]:
    """Size and limit in MB, or in bytes where the MB figures would read the same."""
    megabytes = _number(size / 1e6, beside=limit / 1e6, fewest_decimals=1)
    if megabytes == f"{limit / 1e6:.3f}":
        return f"{size:,} bytes", f"{limit:,} bytes"
    return f"{megabytes} MB", f"{limit / 1e6:g} MB"


def _number(value: float, beside: float, fewest_decimals: int = 0) -> str:
    """`value` with the fewest decimals (up to 3) that tell it apart from `beside`, a limit."""
    for decimals in range(fewest_decimals, 4):
        text = f"{value:.{decimals}f}"
        if text != f"{beside:.{decimals}f}":
            break
    return text


# ---------------------------------------------------------------- images

def prepare_image_bytes(data: bytes, name: str, limits: MediaLimits) -> PreparedImage:
    image = _open_image(data, name)
    original_size = image.size
    notes: list[str] = []
    if (frames := _frame_count(image)) > 1:
        notes.append(f"{name}: animated; only its first frame of {frames} is used")
    image = _decode_image(image, name, limits.image_max_pixels)
    if image.width * image.height < original_size[0] * original_size[1]:
        notes.append(f"{name}: downscaled from {original_size[0]}x{original_size[1]} "
                     f"to {image.size[0]}x{image.size[1]}")
    _check_not_too_thin(name, image.size, limits.dynamic_hd)
    tokens = image_token_count(*image.size, dynamic_hd=limits.dynamic_hd)
    return PreparedImage(image=image, name=name, sha256=hashlib.sha256(data).hexdigest(),
                         tokens=tokens, original_size=original_size, notes=tuple(notes))


def _open_image(data: bytes, name: str) -> Image.Image:
    import io

    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise BadInput(_too_many_pixels_message(name, _pixels_in(str(error)))) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise BadInput(f"{name} is not an image that can be read: it is damaged, cut short or "
                       f"in an unsupported format. {IMAGES_THAT_WORK}.") from None
    width, height = image.size
    if width * height > BOMB_PIXELS:
        raise BadInput(_too_many_pixels_message(name, width * height, (width, height)))
    if width < 1 or height < 1:
        raise BadInput(f"{name} has no pixels ({width}x{height}); attach a picture with content.")
    return image


def _frame_count(image: Image.Image) -> int:
    try:
        return getattr(image, "n_frames", 1)
    except (OSError, ValueError, EOFError):  # counting reads every frame; a damaged one stops it
        return 1


def _pixels_in(bomb_message: str) -> int | None:
    """The pixel count in Pillow's 'Image size (N pixels) exceeds limit ...'."""
    import re

    found = re.search(r"\((\d+) pixels\)", bomb_message)
    return int(found.group(1)) if found else None


def _too_many_pixels_message(name: str, pixels: int | None,
                             dimensions: tuple[int, int] | None = None) -> str:
    limit = BOMB_PIXELS / 1e6
    if pixels is None:
        how_large = f"over {2 * limit:g} megapixels"
    else:
        how_large = f"{_number(pixels / 1e6, beside=limit)} megapixels"
    if dimensions:
        how_large = f"{dimensions[0]}x{dimensions[1]} pixels, {how_large}"
    return (f"{name} is {how_large}; the largest image that can be opened safely is "
            f"{limit:g} megapixels. Scale it down below that and attach it again.")


def _decode_image(image: Image.Image, name: str, max_pixels: int) -> Image.Image:
    try:
        if image.format == "JPEG" and (reduction := _jpeg_reduction(image.size, max_pixels)) > 1:
            # libjpeg decodes at 1/2, 1/4 or 1/8 scale far faster than in full.
            image.draft("RGB", (image.width // reduction, image.height // reduction))
        image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
    except (OSError, ValueError, SyntaxError, EOFError):
        raise BadInput(f"{name} is damaged: its picture data cannot be decoded (the file may be "
                       "cut short). Save or export it again, e.g. as PNG or JPEG.") from None
    if image.width * image.height > max_pixels:
        scale = math.sqrt(max_pixels / (image.width * image.height))
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    return image


def _jpeg_reduction(size: tuple[int, int], max_pixels: int) -> int:
    """The largest libjpeg scale-down (1, 2, 4 or 8) whose result keeps at least half the
    pixels allowed: a little under the limit is worth a decode several times faster (the
    processor resizes the picture to its crop grid anyway)."""
    pixels = size[0] * size[1]
    if pixels <= max_pixels:
        return 1
    for reduction in (8, 4, 2):
        if pixels / reduction**2 >= max_pixels / 2:
            return reduction
    return 1


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        image = _deep_to_8_bit(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _deep_to_8_bit(image: Image.Image) -> Image.Image:
    """16-bit (and 32-bit integer) greys to 8 bits by scale, not by clipping, which turns
    all but the darkest 1/256 of the range white; floats are taken to span 0 to 1."""
    values = np.asarray(image, dtype=np.float64)
    scale = 255.0 if image.mode == "F" else 1 / 257
    return Image.fromarray(np.clip(values * scale, 0, 255).round().astype(np.uint8), mode="L")


def resized_size(width: int, height: int, *, dynamic_hd: int) -> tuple[int, int]:
    """The size the processor scales an image to before padding it to its crop grid."""
    crops_w, crops_h = _crop_grid(width, height, dynamic_hd)
    target_w, target_h = crops_w * VIT_IMAGE_SIZE, crops_h * VIT_IMAGE_SIZE
    pad_h, pad_w = _padding(width, height, target_w, target_h)
    return target_w - pad_w, target_h - pad_h


def _check_not_too_thin(name: str, size: tuple[int, int], dynamic_hd: int) -> None:
    """Phi-4-MM's processor refuses an image whose scaled side would be under
    `MIN_RESIZED_SIDE` pixels ("the aspect ratio is very extreme"); say so before the
    engine does, with the size that would work."""
    resized = resized_size(*size, dynamic_hd=dynamic_hd)
    if min(resized) >= MIN_RESIZED_SIDE:
        return
    thin = 0 if resized[0] < resized[1] else 1
    needed = _thinnest_accepted(size, thin, dynamic_hd)
    side = "wide" if thin == 0 else "tall"
    raise BadInput(
        f"{name} is {size[0]}x{size[1]} pixels, too thin for the model: it scales images to "
        f"its 448-pixel crops (this one to {resized[0]}x{resized[1]}) and needs at least "
        f"{MIN_RESIZED_SIDE} pixels on each side. Pad it with a plain border to at least "
        f"{needed} pixels {side}, or crop it to a less elongated part, and attach it again.")


def _thinnest_accepted(size: tuple[int, int], thin: int, dynamic_hd: int) -> int:
    """The smallest length of side `thin` (0: width, 1: height) that the processor accepts."""
    trial = list(size)
    while min(resized_size(*trial, dynamic_hd=dynamic_hd)) < MIN_RESIZED_SIDE:
        trial[thin] += 1
    return trial[thin]


def image_token_count(width: int, height: int, *, dynamic_hd: int) -> int:
    """Tokens Phi-4-MM spends on a `width` x `height` image (global view, crops, separators)."""
    crops_w, crops_h = _crop_grid(width, height, dynamic_hd)
    target_w, target_h = crops_w * VIT_IMAGE_SIZE, crops_h * VIT_IMAGE_SIZE
    pad_h, pad_w = _padding(width, height, target_w, target_h)
    feat_w, feat_h = target_w // VIT_PATCH_SIZE, target_h // VIT_PATCH_SIZE
    if pad_w >= VIT_PATCH_SIZE:
        feat_w -= pad_w // VIT_PATCH_SIZE
    elif pad_h >= VIT_PATCH_SIZE:
        feat_h -= pad_h // VIT_PATCH_SIZE
    hd_w = math.ceil(feat_w / TOKEN_COMPRESSION)
    hd_h = math.ceil(feat_h / TOKEN_COMPRESSION)
    global_side = VIT_IMAGE_SIZE // VIT_PATCH_SIZE // TOKEN_COMPRESSION
    separator = 1
    return global_side * global_side + global_side + separator + hd_w * hd_h + hd_h


def _crop_grid(width: int, height: int, max_crops: int) -> tuple[int, int]:
    crops_w = math.ceil(width / VIT_IMAGE_SIZE)
    crops_h = math.ceil(height / VIT_IMAGE_SIZE)
    if crops_w * crops_h <= max_crops:
        return crops_w, crops_h
    candidates = sorted(
        {(i, j) for i in range(1, max_crops + 1) for j in range(1, max_crops + 1)
         if i * j <= max_crops},
        key=lambda ratio: ratio[0] * ratio[1],
    )
    return closest_aspect_ratio(width / height, candidates, width, height, VIT_IMAGE_SIZE)


def closest_aspect_ratio(aspect_ratio: float, candidates: list[tuple[int, int]], width: int,
                         height: int, image_size: int) -> tuple[int, int]:
    """The crop grid whose shape is nearest the image's; on a tie, the larger grid when the
    image has the pixels to fill more than half of it (Phi-4-MM's dynamic-HD rule)."""
    best, best_diff = (1, 1), float("inf")
    area = width * height
    for cols, rows in candidates:
        diff = abs(aspect_ratio - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * image_size * image_size * cols * rows:
            best = (cols, rows)
    return best


def _padding(width: int, height: int, target_w: int, target_h: int) -> tuple[int, int]:
    if target_w / width < target_h / height:
        return target_h - int(height * (target_w / width)), 0
    return 0, target_w - int(width * (target_h / height))


# ---------------------------------------------------------------- audio

AUDIO_THAT_WORKS = ("WAV, FLAC, MP3, OGG (Vorbis or Opus), WebM (Opus, as Chrome and Firefox "
                    "record) and M4A/MP4 (AAC, as phones and Safari record) work")
# libsndfile reads these at least as fast as FFmpeg and knows their exact length from the
# header; the rest (Opus, MP3, AAC, WebM, MP4, anything libsndfile cannot open) goes to PyAV.
SOUNDFILE_FORMATS = {("WAV", None), ("WAVEX", None), ("FLAC", None), ("OGG", "VORBIS")}
# Lengths are compared to the limits to the millisecond, the precision a refusal shows.
LENGTH_TOLERANCE = 0.001


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
        with av.open(io.BytesIO(data), metadata_errors="ignore") as container:
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
    notes = ()
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
    return (f"{name}: {_duration(seconds)} long; the model card recommends at most "
            f"{CARD_AUDIO_SECONDS:g} s for speech recognition and translation, so a longer "
            "clip may be transcribed less well (split it for those tasks)")


def _check_short(name: str, seconds: float, limits: MediaLimits) -> None:
    if seconds >= limits.audio_min_seconds - LENGTH_TOLERANCE:
        return
    shortest = _duration(limits.audio_min_seconds)
    if seconds == 0:
        raise BadInput(f"{name} holds no sound (0 s of audio); the shortest accepted is "
                       f"{shortest}. Record again.")
    raise BadInput(f"{name} is {_duration(seconds, beside=limits.audio_min_seconds)} long; "
                   f"the shortest accepted is {shortest}. Record a little longer.")


def _too_long_message(name: str, declared: float | None, limits: MediaLimits) -> str:
    limit = limits.audio_max_seconds
    longest = _duration(limit)
    if limit >= 60:
        longest += f" ({limit:g} s)"
    if declared is not None and declared > limit:
        length = f"is {_duration(declared, beside=limit)} long"
    else:  # decoding stopped at the limit and the file does not say how long it is
        length = f"is longer than {_duration(limit)}"
    return (f"{name} {length}; the longest accepted is {longest}. "
            "Trim it or record a shorter clip.")


def _duration(seconds: float, beside: float | None = None) -> str:
    """'3 min 20 s', '2 h 0 min', '0.25 s': exact to the millisecond at most, and with as many
    decimals as it takes to differ from `beside` (a limit), so that a refusal never reads
    '3 min is longer than 3 min'."""
    for decimals in range(4):
        text = _duration_text(seconds, decimals)
        if beside is None and math.isclose(round(seconds, decimals), seconds, abs_tol=1e-9):
            break
        if beside is not None and text != _duration_text(beside, decimals):
            break
    return text


def _duration_text(seconds: float, decimals: int) -> str:
    if seconds >= 3600:
        hours, rest = divmod(round(seconds), 3600)
        return f"{hours} h {rest // 60} min"
    minutes, rest = divmod(round(seconds, decimals), 60)
    rest_text = f"{rest:.{decimals}f} s"
    if not minutes:
        return rest_text
    return f"{minutes:.0f} min" + (f" {rest_text}" if round(rest, decimals) else "")


def _mix_to_mono(samples: np.ndarray) -> np.ndarray:
    """(frames, channels) to (frames,) float32, averaging the channels."""
    if samples.ndim == 2 and samples.shape[1] > 1:
        # A matrix-vector product: several times faster than `mean(axis=1)` on interleaved rows.
        weights = np.full(samples.shape[1], 1 / samples.shape[1], dtype=np.float32)
        return samples.astype(np.float32, copy=False) @ weights
    return np.ascontiguousarray(samples.reshape(-1), dtype=np.float32)


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    return soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)


def audio_token_count(num_samples: int) -> int:
    """Tokens Phi-4-MM spends on `num_samples` of 16 kHz audio (one per 80 ms)."""
    frames = (num_samples - WINDOW_SAMPLES) // HOP_SAMPLES + 1
    return max(0, math.ceil(frames / AUDIO_COMPRESSION))


# ---------------------------------------------------------------- for OpenAI-style requests

PNG_MAX_PIXELS = VIT_IMAGE_SIZE * VIT_IMAGE_SIZE


@lru_cache(maxsize=16)
def image_data_url(image: PreparedImage) -> str:
    """The image as a data URL: PNG up to one 448-pixel crop, JPEG at quality 95 above,
    where a photo's PNG is several times larger for no visible gain. The same image
    gives the same bytes, so the server's media cache recognises it in later turns."""
    import base64
    import io

    buffer = io.BytesIO()
    if image.size[0] * image.size[1] <= PNG_MAX_PIXELS:
        image.image.save(buffer, "PNG")
        mime = "image/png"
    else:
        image.image.save(buffer, "JPEG", quality=95)
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


@lru_cache(maxsize=16)
def audio_wav_base64(audio: PreparedAudio) -> str:
    """The clip as base64 WAV, 16 kHz mono 16-bit PCM, for an `input_audio` part."""
    import base64
    import io

    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, audio.samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
