"""Images: decode anything a Mac user drops, then resize and cut 48×48 patches as the reference does.

Decoding: Pillow (+ pillow-heif for HEIC/HEIF); EXIF orientation applied; the first frame of
an animation; transparency composited onto white (as transformers' `convert_to_rgb`).
Resize: aspect-ratio preserving to a soft-token budget (70/140/280/560/1120), both sides
rounded *down* to multiples of 48 (`get_aspect_ratio_preserving_size`), bicubic with
antialiasing. Patches: raster order over the grid, each flattened (y, x, c); positions
(x=column, y=row); padded to the budget with zero pixels and position (-1, -1).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import (
    CorruptMediaError,
    MediaTooLargeError,
    UnsupportedMediaError,
    check_media_file,
    describe_source,
)

try:  # HEIC/HEIF from iPhones
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - optional at runtime
    pillow_heif = None

SUPPORTED_BUDGETS = (70, 140, 280, 560, 1120)
DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: above any camera, far below a decompression bomb
DEFAULT_MAX_BYTES = 200 * 1024 * 1024
_FORMATS = "JPEG, PNG, HEIC, WebP, GIF, TIFF or BMP"


@dataclass(frozen=True)
class ImageFeatures:
    """One image ready for the model."""

    pixel_values: np.ndarray  # [budget, (patch*pool)^2 * 3] float32 in [0, 1]
    position_ids: np.ndarray  # [budget, 2] int64, (x, y); (-1, -1) for padding
    num_soft_tokens: int  # real patches (<= budget): the placeholder count


def validate_budget(budget: int) -> int:
    """Return `budget` if it is a supported soft-token budget, else raise ValueError."""
    if budget not in SUPPORTED_BUDGETS:
        raise ValueError(f"Image budget must be one of {SUPPORTED_BUDGETS}, got {budget}.")
    return int(budget)


def aspect_ratio_preserving_size(
    height: int, width: int, patch_size: int, max_patches: int, pooling_kernel_size: int
) -> tuple[int, int]:
    """Largest size with at most `max_patches` patches and sides divisible by patch*pool (as HF)."""
    total_px = height * width
    target_px = max_patches * (patch_size**2)
    factor = math.sqrt(target_px / total_px)
    side = pooling_kernel_size * patch_size
    target_height = int(math.floor(factor * height / side)) * side
    target_width = int(math.floor(factor * width / side)) * side
    if target_height == 0 and target_width == 0:
        raise ValueError(f"Cannot resize a {height}x{width} image to a non-empty grid.")
    max_side = (max_patches // pooling_kernel_size**2) * side
    if target_height == 0:
        target_height = side
        target_width = min(int(math.floor(width / height)) * side, max_side)
    elif target_width == 0:
        target_width = side
        target_height = min(int(math.floor(height / width)) * side, max_side)
    if target_height * target_width > target_px:
        raise ValueError(
            f"Resizing {height}x{width} to {target_height}x{target_width} exceeds the budget."
        )
    return target_height, target_width


def _has_alpha(image: Image.Image) -> bool:
    return "A" in image.getbands() or image.info.get("transparency") is not None


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with transparency composited onto white (as transformers' `convert_to_rgb`)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: PIL's convert would clip to 255; scale to 8 bits instead.
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8), "L")
    if _has_alpha(image):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")  # no copy of RGB pixels


def _open_path(path: Path, name: str, max_pixels: int, max_bytes: int) -> Image.Image:
    check_media_file(path, f"The image {name}", max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaError(
            f"The file {name} is not an image we can read; use {_FORMATS}.", source=str(path)
        ) from exc
    except Image.DecompressionBombError as exc:
        raise MediaTooLargeError(
            f"The image {name} is too large to open safely; the limit is {max_pixels / 1e6:.0f} megapixels.",
            source=str(path),
            limit=f"{max_pixels} pixels",
        ) from exc
    except OSError as exc:
        raise CorruptMediaError(
            f"The image {name} is damaged and cannot be read.", source=str(path)
        ) from exc
    return image


def load_image(
    source: Any,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> np.ndarray:
    """Decode `source` (path, PIL image or array) into an upright RGB uint8 array [H, W, 3].

    Raises `UnsupportedMediaError`, `CorruptMediaError`, `MediaTooLargeError` (all `MediaError`).
    """
    name = describe_source(source, "The image")
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    if isinstance(source, (str, os.PathLike)):
        image = _open_path(Path(source), name, max_pixels, max_bytes)
        src = str(source)
    elif isinstance(source, Image.Image):
        image, src = source, None
    else:
        raise UnsupportedMediaError(f"Unsupported image input of type {type(source).__name__}.")
    width, height = image.size
    if width * height > max_pixels:
        raise MediaTooLargeError(
            f"The image {name} is {width}×{height} ({width * height / 1e6:.0f} megapixels); "
            f"the limit is {max_pixels / 1e6:.0f} megapixels.",
            source=src,
            limit=f"{max_pixels} pixels",
        )
    if width == 0 or height == 0:
        raise CorruptMediaError(f"The image {name} has no pixels.", source=src)
    try:
        image.seek(0)  # first frame of GIF/APNG/WebP animations
        image.load()
        if src is not None:  # opened here: turned upright in place, without a copy of the pixels
            ImageOps.exif_transpose(image, in_place=True)
        else:  # the caller's image is left as it was
            image = ImageOps.exif_transpose(image)
        rgb = to_rgb(image)
        return np.asarray(rgb, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptMediaError(
            f"The image {name} is damaged and cannot be read.", source=src
        ) from exc


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    """HxW, HxWx1, HxWx3 or HxWx4 (uint8, or float in [0, 1]) -> HxWx3 uint8."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or 0 in array.shape[:2]:
        raise UnsupportedMediaError(
            f"An image array must be H×W×{{1,3,4}}; got shape {array.shape}."
        )
    if array.dtype != np.uint8:
        values = np.asarray(array, dtype=np.float64)
        if not np.isfinite(values).all():
            raise CorruptMediaError("The image contains invalid (NaN or infinite) pixel values.")
        array = np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    elif array.shape[-1] == 4:
        rgb = array[..., :3].astype(np.float32) / 255.0
        alpha = array[..., 3:].astype(np.float32) / 255.0
        array = np.rint((rgb * alpha + (1.0 - alpha)) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(array)


def resize_for_budget(
    rgb: np.ndarray, max_soft_tokens: int, patch_size: int = 16, pooling_kernel_size: int = 3
) -> np.ndarray:
    """Aspect-preserving bicubic (antialiased) resize of an RGB uint8 array to the budget grid."""
    height, width = rgb.shape[:2]
    target_h, target_w = aspect_ratio_preserving_size(
        height, width, patch_size, max_soft_tokens * pooling_kernel_size**2, pooling_kernel_size
    )
    if (target_h, target_w) == (height, width):
        return rgb
    resized = Image.fromarray(rgb).resize((target_w, target_h), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.uint8)


def patchify(
    rgb: np.ndarray, max_soft_tokens: int, patch_size: int = 16, pooling_kernel_size: int = 3
) -> ImageFeatures:
    """Cut a resized RGB uint8 array into (patch*pool)-pixel patches, padded to `max_soft_tokens`."""
    side = patch_size * pooling_kernel_size
    height, width = rgb.shape[:2]
    grid_h, grid_w = height // side, width // side
    n = grid_h * grid_w
    if n > max_soft_tokens:
        raise ValueError(f"{n} patches exceed the budget of {max_soft_tokens}.")
    dim = side * side * 3
    pixels = np.zeros((max_soft_tokens, dim), dtype=np.float32)
    blocks = rgb[: grid_h * side, : grid_w * side].reshape(grid_h, side, grid_w, side, 3)
    blocks = blocks.transpose(0, 2, 1, 3, 4).reshape(n, dim)
    np.multiply(blocks, np.float32(1.0 / 255.0), out=pixels[:n], casting="unsafe")
    positions = np.full((max_soft_tokens, 2), -1, dtype=np.int64)
    rows, cols = np.divmod(np.arange(n), grid_w)
    positions[:n, 0] = cols
    positions[:n, 1] = rows
    return ImageFeatures(pixel_values=pixels, position_ids=positions, num_soft_tokens=n)


def preprocess_image(
    source: Any,
    max_soft_tokens: int = 280,
    *,
    patch_size: int = 16,
    pooling_kernel_size: int = 3,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImageFeatures:
    """Decode, resize and patchify one image for a soft-token budget."""
    validate_budget(max_soft_tokens)
    rgb = load_image(source, max_pixels=max_pixels)
    resized = resize_for_budget(rgb, max_soft_tokens, patch_size, pooling_kernel_size)
    return patchify(resized, max_soft_tokens, patch_size, pooling_kernel_size)
