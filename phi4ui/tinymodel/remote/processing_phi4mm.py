"""Image, audio and combined processors for random-weight Phi-4-multimodal checkpoints.

This file is copied into each generated checkpoint folder and loaded by
transformers through ``auto_map`` (``trust_remote_code=True``), so it must
stay self-contained: no imports from the ``phi4ui`` package.

Its outputs follow what vLLM's ``Phi4MMForCausalLM`` consumes:

* images: a global 448x448 view plus one 448x448 crop per tile of a
  "dynamic HD" grid (at most ``dynamic_hd`` tiles), a 32x32 patch mask per
  crop that marks the padding, and the padded canvas size;
* audio: 80-bin log-mel features at 16 kHz (25 ms window, 10 ms hop);
* text: each ``<|image_N|>`` / ``<|audio_N|>`` placeholder is expanded to as
  many ``<|endoftext10|>`` / ``<|endoftext11|>`` tokens as the model produces
  embeddings for that item.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from transformers import BatchFeature, ProcessorMixin
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.image_processing_utils import BaseImageProcessor
from transformers.processing_utils import ImagesKwargs

IMAGE_TOKEN = "<|endoftext10|>"
AUDIO_TOKEN = "<|endoftext11|>"
IMAGE_TOKEN_ID = 200010
AUDIO_TOKEN_ID = 200011
PLACEHOLDER_PATTERN = re.compile(r"<\|(image|audio)_(\d+)\|>")

CROP_SIZE = 448
PATCH_SIZE = 14
TOKEN_COMPRESSION = 2
PATCHES_PER_CROP = CROP_SIZE // PATCH_SIZE
MIN_RESIZED_SIDE = 10  # a thinner scaled image is refused, as by the real processor

SAMPLING_RATE = 16000
WINDOW_LENGTH = 400
HOP_LENGTH = 160
FFT_SIZE = 512
MEL_BINS = 80
AUDIO_COMPRESSION_RATE = 8


# ---------------------------------------------------------------- image geometry


def candidate_grids(max_tiles: int, min_tiles: int = 1) -> list[tuple[int, int]]:
    """All (columns, rows) grids with min_tiles..max_tiles tiles, fewest tiles first.

    Built the way vLLM builds its candidate list, so that ties resolve identically.
    """
    grids = set(
        (cols, rows)
        for cols in range(1, max_tiles + 1)
        for rows in range(1, max_tiles + 1)
        if min_tiles <= cols * rows <= max_tiles
    )
    return sorted(grids, key=lambda grid: grid[0] * grid[1])


def closest_grid(
    aspect_ratio: float,
    grids: Sequence[tuple[int, int]],
    width: int,
    height: int,
    tile_size: int,
) -> tuple[int, int]:
    """The grid whose aspect ratio is nearest to the image's.

    On a tie the larger grid wins when the image has more than half its pixels.
    """
    best_grid = (1, 1)
    best_diff = math.inf
    area = width * height
    for grid in grids:
        diff = abs(aspect_ratio - grid[0] / grid[1])
        if diff < best_diff:
            best_diff, best_grid = diff, grid
        elif diff == best_diff and area > 0.5 * tile_size * tile_size * grid[0] * grid[1]:
            best_grid = grid
    return best_grid


def tile_grid(width: int, height: int, max_tiles: int) -> tuple[int, int]:
    """(columns, rows) of 448-pixel tiles that an image is resized and padded to."""
    cols = math.ceil(width / CROP_SIZE)
    rows = math.ceil(height / CROP_SIZE)
    if cols * rows <= max_tiles:
        return cols, rows
    return closest_grid(width / height, candidate_grids(max_tiles), width, height, CROP_SIZE)


def fitted_size(width: int, height: int, canvas_width: int, canvas_height: int) -> tuple[int, int]:
    """Size of the image scaled (aspect kept) to touch the canvas's right or bottom edge."""
    scale_w = canvas_width / width
    scale_h = canvas_height / height
    if scale_w < scale_h:
        return canvas_width, int(height * scale_w)
    return int(width * scale_h), canvas_height


def valid_patch_grid(width: int, height: int, cols: int, rows: int) -> tuple[int, int]:
    """(rows, columns) of 14-pixel patches that hold image content rather than padding."""
    canvas_w, canvas_h = cols * CROP_SIZE, rows * CROP_SIZE
    fit_w, fit_h = fitted_size(width, height, canvas_w, canvas_h)
    patch_rows = canvas_h // PATCH_SIZE
    patch_cols = canvas_w // PATCH_SIZE
    pad_w, pad_h = canvas_w - fit_w, canvas_h - fit_h
    # Padding thinner than one patch is counted as content, as vLLM does.
    if pad_w >= PATCH_SIZE:
        patch_cols -= pad_w // PATCH_SIZE
    elif pad_h >= PATCH_SIZE:
        patch_rows -= pad_h // PATCH_SIZE
    return patch_rows, patch_cols


def image_token_count(width: int, height: int, dynamic_hd: int) -> int:
    """Number of image embeddings (= placeholder tokens) for one image."""
    cols, rows = tile_grid(width, height, dynamic_hd)
    patch_rows, patch_cols = valid_patch_grid(width, height, cols, rows)
    feat_rows = math.ceil(patch_rows / TOKEN_COMPRESSION)
    feat_cols = math.ceil(patch_cols / TOKEN_COMPRESSION)
    side = PATCHES_PER_CROP // TOKEN_COMPRESSION
    global_view = side * side + side  # features plus one row separator per row
    separator = 1
    return global_view + separator + feat_rows * feat_cols + feat_rows


# ---------------------------------------------------------------- audio geometry


def audio_frame_count(num_samples: int) -> int:
    """Number of 10 ms log-mel frames for a 16 kHz waveform."""
    return max(num_samples - WINDOW_LENGTH, 0) // HOP_LENGTH + 1


def audio_token_count(num_frames: int, compression_rate: int = AUDIO_COMPRESSION_RATE) -> int:
    """Number of audio embeddings (= placeholder tokens) for num_frames log-mel frames."""
    return math.ceil(num_frames / compression_rate)


# ---------------------------------------------------------------- image processor


class Phi4MMImagesKwargs(ImagesKwargs, total=False):
    dynamic_hd: int


def _to_rgb_image(image: Any) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image.cpu() if hasattr(image, "cpu") else image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)
    if array.dtype != np.uint8:
        scale = 255.0 if array.size and float(array.max()) <= 1.0 else 1.0
        array = np.clip(array * scale, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array).convert("RGB")


class Phi4MMImageProcessor(BaseImageProcessor):
    """Dynamic-HD tiling into 448x448 crops, normalised to [-1, 1]."""

    model_input_names: ClassVar[list[str]] = [
        "input_image_embeds",
        "image_sizes",
        "image_attention_mask",
    ]
    valid_kwargs = Phi4MMImagesKwargs

    def __init__(
        self,
        dynamic_hd: int = 4,
        crop_size: int = CROP_SIZE,
        image_mean: Sequence[float] = (0.5, 0.5, 0.5),
        image_std: Sequence[float] = (0.5, 0.5, 0.5),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if crop_size != CROP_SIZE:
            raise ValueError(f"only {CROP_SIZE}-pixel crops are supported, got {crop_size}")
        self.dynamic_hd = int(dynamic_hd)
        self.crop_size = crop_size
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)

    def find_closest_aspect_ratio(
        self,
        aspect_ratio: float,
        target_ratios: Sequence[tuple[int, int]],
        width: int,
        height: int,
        image_size: int,
    ) -> tuple[int, int]:
        return closest_grid(aspect_ratio, target_ratios, width, height, image_size)

    def num_image_tokens(self, width: int, height: int, dynamic_hd: int | None = None) -> int:
        return image_token_count(width, height, dynamic_hd or self.dynamic_hd)

    def _normalise(self, image: Image.Image) -> np.ndarray:
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        pixels = (pixels - np.asarray(self.image_mean, np.float32)) / np.asarray(
            self.image_std, np.float32
        )
        return pixels.transpose(2, 0, 1)

    def _process_one(self, image: Any, dynamic_hd: int) -> dict[str, Any]:
        rgb = _to_rgb_image(image)
        width, height = rgb.size
        cols, rows = tile_grid(width, height, dynamic_hd)
        canvas_w, canvas_h = cols * CROP_SIZE, rows * CROP_SIZE
        fit_w, fit_h = fitted_size(width, height, canvas_w, canvas_h)
        if min(fit_w, fit_h) < MIN_RESIZED_SIDE:
            # The real processor's refusal, word for word.
            raise ValueError(f"the aspect ratio is very extreme {(fit_w, fit_h)}")
        canvas = Image.new("RGB", (canvas_w, canvas_h), (255, 255, 255))
        canvas.paste(rgb.resize((fit_w, fit_h), Image.Resampling.BICUBIC))

        views = [canvas.resize((CROP_SIZE, CROP_SIZE), Image.Resampling.BICUBIC)]
        for row in range(rows):
            for col in range(cols):
                box = (
                    col * CROP_SIZE,
                    row * CROP_SIZE,
                    (col + 1) * CROP_SIZE,
                    (row + 1) * CROP_SIZE,
                )
                views.append(canvas.crop(box))
        crops = np.stack([self._normalise(view) for view in views])

        patch_rows, patch_cols = valid_patch_grid(width, height, cols, rows)
        grid_mask = np.zeros((rows * PATCHES_PER_CROP, cols * PATCHES_PER_CROP), dtype=bool)
        grid_mask[:patch_rows, :patch_cols] = True
        crop_masks = (
            grid_mask.reshape(rows, PATCHES_PER_CROP, cols, PATCHES_PER_CROP)
            .transpose(0, 2, 1, 3)
            .reshape(rows * cols, PATCHES_PER_CROP, PATCHES_PER_CROP)
        )
        global_mask = np.ones((1, PATCHES_PER_CROP, PATCHES_PER_CROP), dtype=bool)
        return {
            "crops": crops,
            "mask": np.concatenate([global_mask, crop_masks]),
            "size": (canvas_h, canvas_w),
            "tokens": image_token_count(width, height, dynamic_hd),
        }

    def preprocess(
        self,
        images: Any,
        dynamic_hd: int | None = None,
        return_tensors: str | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        if images is None:
            images = []
        elif not isinstance(images, (list, tuple)):
            images = [images]
        processed = [
            self._process_one(image, int(dynamic_hd or self.dynamic_hd)) for image in images
        ]
        max_crops = max((len(item["crops"]) for item in processed), default=1)
        pixels = np.zeros((len(processed), max_crops, 3, CROP_SIZE, CROP_SIZE), dtype=np.float32)
        masks = np.zeros(
            (len(processed), max_crops, PATCHES_PER_CROP, PATCHES_PER_CROP), dtype=bool
        )
        for index, item in enumerate(processed):
            pixels[index, : len(item["crops"])] = item["crops"]
            masks[index, : len(item["mask"])] = item["mask"]
        data = {
            "input_image_embeds": pixels,
            "image_sizes": np.asarray([item["size"] for item in processed], dtype=np.int64).reshape(
                -1, 2
            ),
            "image_attention_mask": masks,
            "num_img_tokens": np.asarray([item["tokens"] for item in processed], dtype=np.int64),
        }
        return BatchFeature(data=data, tensor_type=return_tensors)


# ---------------------------------------------------------------- audio processor


@lru_cache(maxsize=4)
def mel_filterbank(sampling_rate: int, fft_size: int, mel_bins: int) -> np.ndarray:
    """Triangular filters on the HTK mel scale, shape [mel_bins, fft_size // 2 + 1]."""

    def to_mel(freq: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + freq / 700.0)

    def to_hz(mel: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    fft_freqs = np.linspace(0.0, sampling_rate / 2, fft_size // 2 + 1)
    edges = to_hz(np.linspace(0.0, to_mel(np.asarray(sampling_rate / 2)), mel_bins + 2))
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (fft_freqs[None, :] - lower) / (center - lower)
    falling = (upper - fft_freqs[None, :]) / (upper - center)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def _mono(wave: Any) -> np.ndarray:
    samples = np.asarray(wave.cpu() if hasattr(wave, "cpu") else wave, dtype=np.float32)
    if samples.ndim == 2:
        channel_axis = 0 if samples.shape[0] < samples.shape[1] else 1
        samples = samples.mean(axis=channel_axis)
    return samples.reshape(-1)


def resampled_length(num_samples: int, source_rate: int, target_rate: int = SAMPLING_RATE) -> int:
    """Length after resampling, rounded up like scipy's resample_poly (which vLLM uses)."""
    return -(-num_samples * target_rate // source_rate)


def _resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    if source_rate == target_rate or samples.size == 0:
        return samples
    target_len = max(1, resampled_length(samples.size, source_rate, target_rate))
    positions = np.linspace(0.0, samples.size - 1, target_len)
    return np.interp(positions, np.arange(samples.size), samples).astype(np.float32)


def log_mel_features(samples: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """[frames, 80] log-mel energies of a mono 16 kHz waveform (25 ms window, 10 ms hop)."""
    if samples.size < WINDOW_LENGTH:
        samples = np.pad(samples, (0, WINDOW_LENGTH - samples.size))
    num_frames = audio_frame_count(samples.size)
    # int16 scale keeps the log energies in the range speech front-ends usually see.
    scaled = samples.astype(np.float32) * 32768.0
    frames = np.lib.stride_tricks.sliding_window_view(scaled, WINDOW_LENGTH)[::HOP_LENGTH][
        :num_frames
    ]
    emphasised = np.concatenate([frames[:, :1], frames[:, 1:] - 0.97 * frames[:, :-1]], axis=1)
    spectrum = np.abs(np.fft.rfft(emphasised * np.hamming(WINDOW_LENGTH), n=FFT_SIZE)) ** 2
    mel = spectrum @ mel_filterbank(sampling_rate, FFT_SIZE, MEL_BINS).T
    return np.log(np.maximum(mel, 1.0)).astype(np.float32)


class Phi4MMAudioFeatureExtractor(SequenceFeatureExtractor):
    """80-bin log-mel features; takes a list of (waveform, sampling_rate) pairs."""

    model_input_names: ClassVar[list[str]] = [
        "input_audio_embeds",
        "audio_embed_sizes",
        "audio_attention_mask",
    ]

    def __init__(
        self,
        feature_size: int = MEL_BINS,
        sampling_rate: int = SAMPLING_RATE,
        padding_value: float = 0.0,
        audio_compression_rate: int = AUDIO_COMPRESSION_RATE,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            **kwargs,
        )
        self.audio_compression_rate = audio_compression_rate

    def _features(self, audio: Any, default_rate: int) -> np.ndarray:
        if isinstance(audio, tuple) and len(audio) == 2:
            wave, rate = audio
        else:
            wave, rate = audio, default_rate
        samples = _resample(_mono(wave), int(rate), self.sampling_rate)
        return log_mel_features(samples, self.sampling_rate)

    def __call__(
        self,
        audios: Any,
        sampling_rate: int | None = None,
        return_tensors: str | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        if isinstance(audios, tuple) or not isinstance(audios, list):
            audios = [audios]
        features = [self._features(audio, sampling_rate or self.sampling_rate) for audio in audios]
        max_frames = max((len(item) for item in features), default=1)
        batch = np.full(
            (len(features), max_frames, self.feature_size), self.padding_value, np.float32
        )
        mask = np.zeros((len(features), max_frames), dtype=bool)
        for index, item in enumerate(features):
            batch[index, : len(item)] = item
            mask[index, : len(item)] = True
        sizes = [audio_token_count(len(item), self.audio_compression_rate) for item in features]
        data = {
            "input_audio_embeds": batch,
            "audio_embed_sizes": np.asarray(sizes, dtype=np.int64),
            "audio_attention_mask": mask,
        }
        return BatchFeature(data=data, tensor_type=return_tensors)


# ---------------------------------------------------------------- combined processor


_TEXT_KWARGS = ("padding", "truncation", "max_length", "add_special_tokens")


class Phi4MMProcessor(ProcessorMixin):
    """processor(text=..., images=[PIL...], audios=[(wave, sr), ...])."""

    def __init__(
        self, image_processor: Any, audio_processor: Any, tokenizer: Any, **kwargs: Any
    ) -> None:
        super().__init__(image_processor, audio_processor, tokenizer, **kwargs)

    def _expand_placeholders(
        self, text: str, image_tokens: list[int], audio_tokens: list[int]
    ) -> str:
        def replace(match: re.Match[str]) -> str:
            kind, number = match.group(1), int(match.group(2))
            counts, token = (
                (image_tokens, IMAGE_TOKEN) if kind == "image" else (audio_tokens, AUDIO_TOKEN)
            )
            if not 1 <= number <= len(counts):
                raise ValueError(
                    f"{match.group(0)} refers to a missing {kind} ({len(counts)} given)"
                )
            return token * counts[number - 1]

        return PLACEHOLDER_PATTERN.sub(replace, text)

    def __call__(
        self,
        text: str | list[str] | None = None,
        images: Any = None,
        audios: Any = None,
        **kwargs: Any,
    ) -> BatchFeature:
        if audios is None:
            audios = kwargs.pop("audio", None)
        if images is not None and not isinstance(images, (list, tuple)):
            images = [images]
        return_tensors = kwargs.pop("return_tensors", None)
        dynamic_hd = kwargs.pop("dynamic_hd", None)

        data: dict[str, Any] = {}
        image_tokens: list[int] = []
        audio_tokens: list[int] = []
        if images is not None and len(images) > 0:
            image_data = self.image_processor(images, dynamic_hd=dynamic_hd)
            image_tokens = [int(n) for n in image_data["num_img_tokens"]]
            data.update(image_data)
        else:
            # vLLM reads image_sizes whenever any media is given, audio alone included.
            data["image_sizes"] = np.zeros((0, 2), dtype=np.int64)
        if audios is not None and len(audios) > 0:
            audio_data = self.audio_processor(audios)
            audio_tokens = [int(n) for n in audio_data["audio_embed_sizes"]]
            data.update(audio_data)
        elif image_tokens:
            # vLLM 0.24 reads the audio features whenever any media is given, images alone
            # included, as the real processor always returns them.
            data["input_audio_embeds"] = np.zeros((0, 0, MEL_BINS), dtype=np.float32)
            data["audio_embed_sizes"] = np.zeros((0,), dtype=np.int64)

        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            expanded = [self._expand_placeholders(t, image_tokens, audio_tokens) for t in texts]
            text_kwargs = {key: kwargs[key] for key in _TEXT_KWARGS if key in kwargs}
            if len(expanded) > 1:
                text_kwargs.setdefault("padding", True)
            encoded = self.tokenizer(expanded, **text_kwargs)
            data["input_ids"] = encoded["input_ids"]
            data["attention_mask"] = encoded["attention_mask"]
        return BatchFeature(data=data, tensor_type=return_tensors)

    @property
    def model_input_names(self) -> list[str]:
        return [
            "input_ids",
            "attention_mask",
            *self.image_processor.model_input_names,
            *self.audio_processor.model_input_names,
        ]


__all__ = [
    "Phi4MMAudioFeatureExtractor",
    "Phi4MMImageProcessor",
    "Phi4MMProcessor",
    "audio_frame_count",
    "audio_token_count",
    "image_token_count",
]
