"""Uploads checked and prepared for the model: which kind a file is, the limits it must
meet, and `prepare`, which hands it to `images` or `audio` to decode.

Every refusal names the file, says what is wrong with figures that show it, and what
would work. Chat history hands the same files back every turn, so each is decoded once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from phi4ui.core.audio import PreparedAudio, prepare_audio_bytes
from phi4ui.core.figures import number_beside
from phi4ui.core.images import VIT_IMAGE_SIZE, PreparedImage, prepare_image_bytes
from phi4ui.errors import BadInput
from phi4ui.settings import REAL_DYNAMIC_HD

if TYPE_CHECKING:
    from phi4ui.settings import Settings

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".webm", ".aac"}


@dataclass(frozen=True)
class MediaLimits:
    image_max_pixels: int = VIT_IMAGE_SIZE * VIT_IMAGE_SIZE * 16
    dynamic_hd: int = REAL_DYNAMIC_HD
    audio_min_seconds: float = 0.3
    audio_max_seconds: float = 180.0
    upload_max_bytes: int = 50 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings, dynamic_hd: int) -> MediaLimits:
        return cls(image_max_pixels=settings.image_max_pixels, dynamic_hd=dynamic_hd,
                   audio_min_seconds=settings.audio_min_seconds,
                   audio_max_seconds=settings.audio_max_seconds,
                   upload_max_bytes=int(settings.upload_max_mb * 1e6))



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
    megabytes = number_beside(size / 1e6, beside=limit / 1e6, fewest_decimals=1)
    if megabytes == f"{limit / 1e6:.3f}":
        return f"{size:,} bytes", f"{limit:,} bytes"
    return f"{megabytes} MB", f"{limit / 1e6:g} MB"

