"""Uploads and recordings turned into what the model takes, and what they will cost.

Images: Pillow, EXIF orientation applied, RGB, downscaled past a pixel limit,
with a guard against decompression bombs. Audio: soundfile (WAV, FLAC, OGG,
MP3) with librosa as a fallback decoder, mixed to mono and resampled to 16 kHz
float32. Token costs follow Phi-4-multimodal's processor exactly, so a prompt
that will not fit is refused before it reaches the engine.
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
    from phi4ui.settings import Settings

SAMPLE_RATE = 16_000
LOWEST_SAMPLE_RATE = 8_000  # the speech encoder's floor
BOMB_PIXELS = 100_000_000  # a 50 MP phone photo passes; a 20000x20000 canvas does not

VIT_IMAGE_SIZE = 448
VIT_PATCH_SIZE = 14
TOKEN_COMPRESSION = 2
AUDIO_COMPRESSION = 8
WINDOW_SAMPLES = 400  # 25 ms at 16 kHz
HOP_SAMPLES = 160  # 10 ms at 16 kHz

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
        raise BadInput(f"{path.name}: the upload is gone; please attach it again.") from None
    _check_size(path.name, stat.st_size, limits)
    kind = kind_of(path)
    if kind == "other":
        raise BadInput(f"{path.name}: only images and audio can be attached "
                       f"({', '.join(sorted(IMAGE_SUFFIXES | AUDIO_SUFFIXES))}).")
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
        raise BadInput(f"{name}: the file is empty.")
    if size > limits.upload_max_bytes:
        raise BadInput(f"{name}: {size / 1e6:.1f} MB is over the upload limit of "
                       f"{limits.upload_max_bytes / 1e6:.0f} MB.")


# ---------------------------------------------------------------- images

def prepare_image_bytes(data: bytes, name: str, limits: MediaLimits) -> PreparedImage:
    image = _open_image(data, name)
    original_size = image.size
    notes: list[str] = []
    image = _decode_image(image, name, limits.image_max_pixels)
    if image.width * image.height < original_size[0] * original_size[1]:
        notes.append(f"{name}: downscaled from {original_size[0]}x{original_size[1]} "
                     f"to {image.size[0]}x{image.size[1]}")
    tokens = image_token_count(*image.size, dynamic_hd=limits.dynamic_hd)
    return PreparedImage(image=image, name=name, sha256=hashlib.sha256(data).hexdigest(),
                         tokens=tokens, original_size=original_size, notes=tuple(notes))


def _open_image(data: bytes, name: str) -> Image.Image:
    import io

    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise BadInput(f"{name}: the image is too large to open safely "
                       f"(over {BOMB_PIXELS // 1_000_000} megapixels).") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise BadInput(f"{name}: this is not an image Pillow can read "
                       "(corrupt, or an unsupported format).") from None
    width, height = image.size
    if width * height > BOMB_PIXELS:
        raise BadInput(f"{name}: {width}x{height} is {width * height // 1_000_000} megapixels, "
                       f"over the {BOMB_PIXELS // 1_000_000} MP that can be opened safely.")
    if width < 1 or height < 1:
        raise BadInput(f"{name}: the image has no pixels.")
    return image


def _decode_image(image: Image.Image, name: str, max_pixels: int) -> Image.Image:
    try:
        if image.format == "JPEG" and (reduction := _jpeg_reduction(image.size, max_pixels)) > 1:
            # libjpeg decodes at 1/2, 1/4 or 1/8 scale far faster than in full.
            image.draft("RGB", (image.width // reduction, image.height // reduction))
        image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
    except (OSError, ValueError, SyntaxError):
        raise BadInput(f"{name}: the image is damaged and cannot be decoded.") from None
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
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


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

def prepare_audio_bytes(data: bytes, name: str, limits: MediaLimits) -> PreparedAudio:
    samples, rate, channels = _decode_audio(data, name, limits)
    seconds = len(samples) / rate
    if seconds < limits.audio_min_seconds:
        raise BadInput(f"{name}: {seconds:.2f} s is too short; record at least "
                       f"{limits.audio_min_seconds:g} s.")
    if rate < LOWEST_SAMPLE_RATE:
        raise BadInput(f"{name}: recorded at {rate} Hz; the speech model needs at least "
                       f"{LOWEST_SAMPLE_RATE} Hz.")
    notes = []
    if channels > 1:
        notes.append(f"{name}: {channels} channels mixed to mono")
    if rate != SAMPLE_RATE:
        samples = _resample(samples, rate)
        notes.append(f"{name}: resampled from {rate} Hz to {SAMPLE_RATE} Hz")
    if not np.isfinite(samples).all():
        raise BadInput(f"{name}: the audio contains invalid samples.")
    return PreparedAudio(samples=samples, name=name, sha256=hashlib.sha256(data).hexdigest(),
                         tokens=audio_token_count(len(samples)), original_rate=rate,
                         original_channels=channels, notes=tuple(notes))


def _decode_audio(data: bytes, name: str, limits: MediaLimits) -> tuple[np.ndarray, int, int]:
    import io

    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            rate, channels = sound.samplerate, sound.channels
            _check_duration(name, sound.frames / rate, limits)
            samples = sound.read(dtype="float32", always_2d=True)
    except soundfile.LibsndfileError:
        samples, rate, channels = _decode_with_librosa(data, name, limits)
    return _mix_to_mono(samples), rate, channels


def _decode_with_librosa(data: bytes, name: str,
                         limits: MediaLimits) -> tuple[np.ndarray, int, int]:
    """Formats libsndfile lacks (m4a, webm) go through audioread/ffmpeg when present."""
    import tempfile

    import librosa

    with tempfile.NamedTemporaryFile(suffix=Path(name).suffix) as handle:
        handle.write(data)
        handle.flush()
        try:
            rate = int(librosa.get_samplerate(handle.name))
            _check_duration(name, librosa.get_duration(path=handle.name), limits)
            samples, _ = librosa.load(handle.name, sr=None, mono=False, dtype=np.float32)
        except BadInput:
            raise
        except Exception:  # noqa: BLE001 - the decoders raise anything on garbage
            raise BadInput(f"{name}: this is not audio that can be decoded "
                           "(WAV, FLAC, OGG and MP3 work).") from None
    samples = np.atleast_2d(samples).T
    return samples, rate, samples.shape[1]


def _check_duration(name: str, seconds: float, limits: MediaLimits) -> None:
    if seconds > limits.audio_max_seconds:
        raise BadInput(f"{name}: {_minutes(seconds)} is longer than the "
                       f"{_minutes(limits.audio_max_seconds)} limit; trim it and try again.")


def _minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def _mix_to_mono(samples: np.ndarray) -> np.ndarray:
    if samples.ndim == 2 and samples.shape[1] > 1:
        return samples.mean(axis=1, dtype=np.float32)
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
