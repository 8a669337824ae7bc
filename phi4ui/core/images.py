"""Images as Phi-4-multimodal takes them, and what each one costs.

Pillow decodes the upload with a guard against decompression bombs, applies its EXIF
orientation, turns it RGB (16-bit greys scaled to 8 bits) and downscales it past a pixel
limit. Token costs follow the model's processor exactly: its dynamic-HD crop grid of
448-pixel tiles, plus a global view.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from phi4ui.core.figures import number_beside
from phi4ui.errors import BadInput

if TYPE_CHECKING:
    from phi4ui.core.media import MediaLimits

BOMB_PIXELS = 100_000_000  # a 50 MP phone photo passes; a 20000x20000 canvas does not
VIT_IMAGE_SIZE = 448
VIT_PATCH_SIZE = 14
TOKEN_COMPRESSION = 2
MIN_RESIZED_SIDE = 10  # the processor refuses images scaled thinner than this
IMAGES_THAT_WORK = "PNG, JPEG, WebP, GIF, BMP and TIFF work"
PNG_MAX_PIXELS = VIT_IMAGE_SIZE * VIT_IMAGE_SIZE

Image.MAX_IMAGE_PIXELS = BOMB_PIXELS


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
        how_large = f"{number_beside(pixels / 1e6, beside=limit)} megapixels"
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

