"""Images in, labels out: loading photos like Keras, ``preprocess_input``, ImageNet class names."""

from __future__ import annotations

import functools
import os
import warnings
from importlib.resources import files
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .shapes import as_float32

RESAMPLING = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class NotAnImageError(ValueError):
    """A file Pillow does not recognise as an image at all (not a damaged one)."""


def display_name(path: str | os.PathLike) -> str:
    """A path as printable text: bytes that are not UTF-8 shown as escapes (``caf\\xe9.jpg``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def load_image(
    path: str | os.PathLike | BinaryIO, size: int | tuple[int, int] = 224,
    interpolation: str = "nearest", exif_orientation: bool = False,
) -> np.ndarray:
    """Load a photo as float32 RGB pixels ``(H, W, 3)`` in [0, 255], resized to ``size``.

    By default this equals ``keras.utils.img_to_array(keras.utils.load_img(path,
    target_size=size))``: convert to RGB (an alpha channel is dropped, as Keras does), then a
    nearest-neighbour resize. ``interpolation="bilinear"`` looks better for small sizes.
    Grayscale, palette and CMYK images become RGB; 16-bit images are scaled to 8 bits (Keras
    would clip them to white). EXIF orientation is ignored by default, as Keras ignores it;
    ``exif_orientation=True`` turns phone photos upright first.

    ``path`` may also be an open binary file (e.g. stdin's bytes; its ``name`` is used in
    messages). Raises
    ``NotAnImageError`` (a ``ValueError``) for files that are not images, ``ValueError`` for
    damaged or truncated images, folders, pipes and images over Pillow's decompression-bomb
    limit (``Image.MAX_IMAGE_PIXELS``), ``FileNotFoundError`` for a missing file.
    """
    height, width = (size, size) if isinstance(size, int) else size
    if interpolation not in RESAMPLING:
        raise ValueError(f"interpolation must be one of {sorted(RESAMPLING)}, got "
                         f"{interpolation!r}")
    name = _check_path(path) if isinstance(path, (str, os.PathLike)) \
        else getattr(path, "name", "<stream>")
    image = _decode(path, name, exif_orientation)
    if image.size != (width, height):
        image = image.resize((width, height), RESAMPLING[interpolation])
    return np.asarray(image, dtype=np.float32)  # (H, W, 3)


def _check_path(path: str | os.PathLike) -> str:
    """The path's printable name, once it is known to be a regular file."""
    name = display_name(path)
    if Path(path).is_dir():
        raise ValueError(f"{name} is a folder, not an image file")
    if not Path(path).exists():
        raise FileNotFoundError(f"{name}: no such file")
    if not Path(path).is_file():  # a pipe or a device would block or never end
        raise ValueError(f"{name} is not a regular file (a pipe or a device?)")
    return name


def _decode(path: str | os.PathLike | BinaryIO, name: str, exif_orientation: bool) -> Image.Image:
    """Open, fully decode and convert to RGB, turning Pillow's many failures into one ValueError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
            if exif_orientation:
                image = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ValueError(f"{name}: refused, more than {Image.MAX_IMAGE_PIXELS:,} pixels "
                         f"(a possible decompression bomb)") from None
    except UnidentifiedImageError:
        raise NotAnImageError(f"{name}: not an image file Pillow can read") from None
    except Exception as error:  # noqa: BLE001
        # Decoders meet arbitrary bytes here and fail in many ways (OSError, SyntaxError,
        # struct.error, IndexError, ...): at this boundary every failure means "bad file".
        raise ValueError(f"{name}: damaged or truncated image ({type(error).__name__}: "
                         f"{error})") from None
    return _to_rgb(image, name)


def _to_rgb(image: Image.Image, name: str) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB."""
    if image.mode in SIXTEEN_BIT_MODES:
        pixels = np.asarray(image, dtype=np.float64)  # (H, W), 0..65535
        image = Image.fromarray(np.round(pixels / 257).clip(0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        raise ValueError(f"{name}: floating-point images are not supported; save as 8-bit")
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
