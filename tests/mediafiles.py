"""Real media files made on the spot for tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image


def image_bytes(size: tuple[int, int] = (640, 480), fmt: str = "PNG", mode: str = "RGB",
                exif_orientation: int | None = None) -> bytes:
    rng = np.random.default_rng(0)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 255, (size[1], size[0], channels), dtype=np.uint8)
    image = Image.fromarray(pixels.squeeze(), mode=mode)
    buffer = io.BytesIO()
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(buffer, fmt, exif=exif)
    else:
        image.save(buffer, fmt)
    return buffer.getvalue()


def write_image(folder: Path, name: str = "photo.png", **kwargs) -> Path:
    path = folder / name
    path.write_bytes(image_bytes(**kwargs))
    return path


def tone(seconds: float, rate: int = 16_000, channels: int = 1, freq: float = 440.0
         ) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def write_audio(folder: Path, name: str = "clip.wav", seconds: float = 2.0,
                rate: int = 16_000, channels: int = 1, **kwargs) -> Path:
    path = folder / name
    soundfile.write(path, tone(seconds, rate, channels), rate, **kwargs)
    return path
