"""Real media files made on the spot for tests."""

from __future__ import annotations

import io
from pathlib import Path

import av
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


# Encoded with PyAV (FFmpeg), the way browsers and phones record.

FRAME_SAMPLES = {"libopus": 960, "aac": 1024, "libmp3lame": 1152, "flac": 1}


def encode_audio(folder: Path, name: str, *, container: str, codec: str, seconds: float = 2.0,
                 rate: int = 48_000, channels: int = 1, bit_rate: int | None = None) -> Path:
    """A tone encoded with `codec` in `container` (an FFmpeg muxer name)."""
    path = folder / name
    with av.open(str(path), "w", format=container) as output:
        stream = _add_audio_stream(output, codec, rate, channels, bit_rate)
        _encode_tone(output, stream, seconds, rate, channels)
    return path


def encode_audio_tracks(folder: Path, name: str, seconds: list[float],
                        rate: int = 48_000) -> Path:
    """A WebM with one Opus track per entry of `seconds`, each that long."""
    path = folder / name
    with av.open(str(path), "w", format="webm") as output:
        streams = [_add_audio_stream(output, "libopus", rate, 1, None) for _ in seconds]
        for stream, length in zip(streams, seconds, strict=True):
            _encode_tone(output, stream, length, rate, 1)
    return path


def _add_audio_stream(output: av.container.OutputContainer, codec: str, rate: int,
                      channels: int, bit_rate: int | None) -> av.audio.stream.AudioStream:
    stream = output.add_stream(codec, rate=rate, layout="stereo" if channels == 2 else "mono")
    if bit_rate:
        stream.bit_rate = bit_rate
    return stream


def _encode_tone(output: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
                 seconds: float, rate: int, channels: int) -> None:
    wave = tone(seconds, rate, channels).reshape(-1, channels).T  # planar: (channels, samples)
    for start in range(0, wave.shape[1], rate):
        chunk = np.ascontiguousarray(wave[:, start:start + rate])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=stream.layout.name)
        frame.sample_rate, frame.pts = rate, start
        output.mux(stream.encode(frame))
    output.mux(stream.encode(None))


class _Unseekable(io.RawIOBase):
    """A write-only stream: FFmpeg cannot go back to write a WebM's length, just as a
    browser's MediaRecorder does not."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return self._file.write(data)

    def close(self) -> None:
        self._file.close()
        super().close()


def encode_long_silence(folder: Path, name: str, seconds: float, rate: int = 48_000) -> Path:
    """`seconds` of silence as a streamed WebM/Opus with no length in its header, like
    Chrome's recordings, made in well under a second: one second is encoded and its last,
    silent packet repeated."""
    path = folder / name
    with _Unseekable(path) as sink, av.open(sink, "w", format="webm") as output:
        stream = output.add_stream("libopus", rate=rate, layout="mono")
        stream.bit_rate = 6_000
        stream.codec_context.options = {"frame_duration": "60"}
        silence = av.AudioFrame.from_ndarray(np.zeros((1, rate), np.float32), format="flt",
                                             layout="mono")
        silence.sample_rate, silence.pts = rate, 0
        packets = list(stream.encode(silence))
        last = packets[-1]
        payload, time_base, step = bytes(last), last.time_base, last.duration
        start = last.pts + step
        output.mux(packets)  # muxing rescales the packets' times: read them first
        for pts in range(start, int(seconds * rate), step):
            packet = av.Packet(payload)
            packet.pts = packet.dts = pts
            packet.duration, packet.time_base, packet.stream = step, time_base, stream
            output.mux(packet)
    return path


def encode_video(folder: Path, name: str, container: str = "webm", codec: str = "libvpx",
                 frames: int = 10) -> Path:
    """A short video with no sound track."""
    path = folder / name
    with av.open(str(path), "w", format=container) as output:
        stream = output.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(frames):
            pixels = np.full((48, 64, 3), index * 20, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path
