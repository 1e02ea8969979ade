"""Images in, labels out: loading photos like Keras, ``preprocess_input``, ImageNet class names."""

from __future__ import annotations

import functools
import os
import warnings
from importlib.resources import files

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .shapes import as_float32

RESAMPLING = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def load_image(
    path: str | os.PathLike, size: int | tuple[int, int] = 224,
    interpolation: str = "nearest", exif_orientation: bool = False,
) -> np.ndarray:
    """Load a photo as float32 RGB pixels ``(H, W, 3)`` in [0, 255], resized to ``size``.

    By default this equals ``keras.utils.img_to_array(keras.utils.load_img(path,
    target_size=size))``: convert to RGB (an alpha channel is dropped, as Keras does), then a
    nearest-neighbour resize. ``interpolation="bilinear"`` looks better for small sizes.
    Grayscale, palette and CMYK images become RGB; 16-bit images are scaled to 8 bits (Keras
    would clip them to white). EXIF orientation is ignored by default, as Keras ignores it;
    ``exif_orientation=True`` turns phone photos upright first.

    Raises ``ValueError`` for files that are not images, truncated images, and images over
    Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``).
    """
    height, width = (size, size) if isinstance(size, int) else size
    if interpolation not in RESAMPLING:
        raise ValueError(f"interpolation must be one of {sorted(RESAMPLING)}, got "
                         f"{interpolation!r}")
    image = _open_checked(path)
    if exif_orientation:
        image = ImageOps.exif_transpose(image)
    image = _to_rgb(image, path)
    if image.size != (width, height):
        image = image.resize((width, height), RESAMPLING[interpolation])
    return np.asarray(image, dtype=np.float32)  # (H, W, 3)


def _open_checked(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image, turning Pillow's many failures into one clear ValueError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
        return image
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ValueError(f"{path}: refused, more than {Image.MAX_IMAGE_PIXELS:,} pixels "
                         f"(a possible decompression bomb)") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file Pillow can read") from None
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError) as error:  # truncated or corrupt data
        raise ValueError(f"{path}: damaged or truncated image: {error}") from None


def _to_rgb(image: Image.Image, path: str | os.PathLike) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB."""
    if image.mode in SIXTEEN_BIT_MODES:
        pixels = np.asarray(image, dtype=np.float64)  # (H, W), 0..65535
        image = Image.fromarray(np.round(pixels / 257).clip(0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        raise ValueError(f"{path}: floating-point images are not supported; save as 8-bit")
    return image.convert("RGB") if image.mode != "RGB" else image


def preprocess_input(x: np.ndarray) -> np.ndarray:
    """Pixels in [0, 255] (any shape, any numeric dtype) -> float32 in [-1, 1]: ``x / 127.5 - 1``.

    The scaling MobileNet was trained with (Keras's ``mode="tf"``). Returns a new array.
    """
    x = as_float32("x", x, "preprocess_input")
    return x / np.float32(127.5) - np.float32(1.0)


@functools.cache
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """The 1000 ImageNet classes as (wnid, label), in the standard 0-based order (bundled)."""
    text = files("mobilenet_np").joinpath("data/imagenet_classes.tsv").read_text("utf8")
    rows = [line.split("\t") for line in text.splitlines()[1:]]
    # A real check, not an assert: ``python -O`` strips asserts, and a shifted table would
    # label every prediction wrongly without a word.
    if [r[0] for r in rows] != [str(i) for i in range(1000)] or any(len(r) != 3 for r in rows):
        raise ValueError("the bundled imagenet_classes.tsv is damaged: reinstall mobilenet-np")
    return tuple((wnid, label) for _, wnid, label in rows)


def top_k(probs: np.ndarray, top: int = 5) -> np.ndarray:
    """Indices of the ``top`` largest scores per row, best first: (N, classes) -> (N, top)."""
    probs = as_float32("probs", probs, "top_k")
    if probs.ndim != 2:
        raise ValueError(f"probs must be 2-D (N, classes), got shape {probs.shape}")
    if not 1 <= top <= probs.shape[1]:
        raise ValueError(f"top must be in 1..{probs.shape[1]}, got {top}")
    return np.argsort(-probs, axis=1, kind="stable")[:, :top]


def decode_predictions(probs: np.ndarray, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """Keras's ``decode_predictions``: for each row of (N, 1000), the best ``top`` as
    (wnid, label, probability), best first."""
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != 1000:
        raise ValueError(f"decode_predictions needs ImageNet scores (N, 1000), got shape "
                         f"{probs.shape}")
    classes = imagenet_classes()
    return [[(*classes[i], float(row[i])) for i in best]
            for row, best in zip(probs, top_k(probs, top), strict=True)]
