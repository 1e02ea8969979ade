"""Images in, labels out: loading photos like Keras, ``preprocess_input``, ImageNet class names."""

from __future__ import annotations

import errno
import functools
import io
import math
import os
import stat
import warnings
from importlib.resources import files
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError
from .shapes import as_float32

RESAMPLING = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
              "bicubic": Image.Resampling.BICUBIC}
# The most bytes one image file (or stdin) may hold: the largest uncompressed image within the
# pixel budget below, 16-bit RGBA (89,478,485 pixels x 8 bytes = 716 MB), fits.
MAX_FILE_BYTES = 1 << 30
UPRIGHT = 1  # EXIF orientation 1: the pixels are stored the way up they are meant to be seen
ORIENTATION_TAG = 0x0112


class NotAnImageError(InputError):
    """A file Pillow does not recognise as an image at all (not a damaged one)."""


def display_name(path: str | os.PathLike) -> str:
    """A path as printable text: bytes that are not UTF-8 shown as escapes (``caf\\xe9.jpg``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace").replace("\0", "\\0")


def printable(text: str) -> str:
    """Text safe to show on a terminal as one line: control characters, terminal escape
    sequences and bidirectional overrides shown as escapes (``a\\nb``, ``\\x1b[31m``)."""
    return text.translate(_ESCAPES)


_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"})
_ESCAPES.update({code: f"\\u{code:04x}" for code in (*range(0x202A, 0x202F),
                                                      *range(0x2066, 0x206A))})


def load_image(
    path: str | os.PathLike | BinaryIO, size: int | tuple[int, int] = 224,
    interpolation: str = "nearest", exif_orientation: bool = False,
    crop_pct: float | None = None,
) -> np.ndarray:
    """Load a photo as float32 RGB pixels ``(H, W, 3)`` in [0, 255], resized to ``size``.

    By default this equals ``keras.utils.img_to_array(keras.utils.load_img(path,
    target_size=size))``: convert to RGB (an alpha channel is dropped, as Keras does), then a
    nearest-neighbour resize. ``interpolation="bilinear"`` looks better for small sizes.
    Grayscale, palette and CMYK images become RGB; images of more than 8 bits (16- and 32-bit
    integers, floats in [0, 1]) are scaled from their mode's range to 8 bits (Keras would clip
    them to white). EXIF orientation is ignored by default, as Keras ignores it;
    ``exif_orientation=True`` turns phone photos upright first (``read_image`` tells the tag).
    ``crop_pct`` (timm's models, e.g. 0.875) resizes and crops as timm evaluates instead:
    ``resize_and_crop``.

    ``path`` may also be an open binary file (e.g. stdin's bytes; its ``name`` is used in
    messages). Raises ``InputError`` (a ``ValueError``; ``NotAnImageError`` for files that are
    not images) for damaged or truncated images, folders, pipes, files over
    ``MAX_FILE_BYTES``, and images or sizes over Pillow's decompression-bomb limit
    (``Image.MAX_IMAGE_PIXELS``); ``FileNotFoundError`` for a missing file.
    """
    return read_image(path, size, interpolation, exif_orientation, crop_pct)[0]


def read_image(
    path: str | os.PathLike | BinaryIO, size: int | tuple[int, int] = 224,
    interpolation: str = "nearest", exif_orientation: bool = False,
    crop_pct: float | None = None,
) -> tuple[np.ndarray, int]:
    """``load_image``'s pixels ``(H, W, 3)`` and the file's EXIF orientation (1: upright)."""
    height, width = _check_size(size, budget=False)
    if interpolation not in RESAMPLING:
        raise InputError(f"interpolation must be one of {sorted(RESAMPLING)}, got "
                         f"{interpolation!r}")
    name = _check_path(path) if isinstance(path, (str, os.PathLike)) else _stream_name(path)
    image, orientation = _decode(path, name, exif_orientation)
    _check_size(size, budget=True)  # after the file's own check, which names the file
    if crop_pct is not None:
        image = resize_and_crop(image, (height, width), interpolation, crop_pct)
    elif image.size != (width, height):
        image = image.resize((width, height), RESAMPLING[interpolation])
    return np.asarray(image, dtype=np.float32), orientation  # (H, W, 3)


def resize_and_crop(image: Image.Image, size: tuple[int, int], interpolation: str,
                    crop_pct: float) -> Image.Image:
    """timm's eval transform: resize to cover floor(size / crop_pct), keeping the photo's
    aspect ratio, then keep the centre (H, W).

    A square size is torchvision's ``Resize``: the shorter side to floor(size / crop_pct), the
    longer in proportion, truncated; any other size, timm's ``ResizeKeepRatio``: both sides
    divided by the smaller of the two ratios photo / target, rounded.
    """
    if not 0 < crop_pct <= 1:
        raise InputError(f"crop_pct must be in (0, 1], got {crop_pct}")
    height, width = size
    (w, h), target = image.size, (math.floor(height / crop_pct), math.floor(width / crop_pct))
    if height == width:
        short = target[0]
        resized = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    else:
        ratio = min(h / target[0], w / target[1])
        resized = (round(w / ratio), round(h / ratio))  # (W, H), as PIL sizes are
    image = image.resize(resized, RESAMPLING[interpolation])
    left, top = round((resized[0] - width) / 2), round((resized[1] - height) / 2)
    return image.crop((left, top, left + width, top + height))


def _check_size(size: int | tuple[int, int], budget: bool) -> tuple[int, int]:
    """(height, width) of positive ints; with ``budget``, within the decompression-bomb
    guard's pixel budget (a 20000x20000 float32 image would be 4.8 GB)."""
    pair = (size, size) if isinstance(size, (int, np.integer)) else size
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in pair)):
        raise InputError(f"size must be a positive int or (height, width), got {size!r}")
    if budget and pair[0] * pair[1] > Image.MAX_IMAGE_PIXELS:
        raise InputError(f"size {pair[0]}x{pair[1]} is {pair[0] * pair[1]:,} pixels, over the "
                         f"{Image.MAX_IMAGE_PIXELS:,}-pixel budget (PIL.Image.MAX_IMAGE_PIXELS, "
                         f"the decompression-bomb guard): ask for a smaller size")
    return int(pair[0]), int(pair[1])


PATH_ERRORS = {  # errno -> what it means for a path given as an image
    errno.ELOOP: "a loop of symbolic links",
    errno.ENAMETOOLONG: "name too long for the file system",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def _check_path(path: str | os.PathLike) -> str:
    """The path's printable name, once it is known to be a regular file of a readable size."""
    name = display_name(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise FileNotFoundError(f"{name}: a link to {display_name(os.readlink(path))}, "
                                    f"which does not exist") from None
        raise FileNotFoundError(f"{name or repr(name)}: no such file{_hint(name)}") from None
    except ValueError:  # an embedded NUL byte
        raise InputError(f"{name}: a path cannot hold a NUL byte") from None
    except OSError as error:
        raise InputError(f"{name}: {PATH_ERRORS.get(error.errno, error.strerror)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{name} is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):  # a pipe or a device would block or never end
        raise InputError(f"{name} is not a regular file (a pipe or a device?)")
    if info.st_size > MAX_FILE_BYTES:
        raise InputError(f"{name}: {info.st_size:,} bytes, over the {MAX_FILE_BYTES:,} an image "
                         f"file may hold (imagenet.MAX_FILE_BYTES)")
    if not os.access(path, os.R_OK):
        raise InputError(f"{name}: permission denied")
    return name


def _hint(name: str) -> str:
    """What a missing path probably meant, when it looks like a common slip."""
    if not name:
        return " (an empty argument)"
    if "://" in name:
        return " (images are read from files: download it first)"
    if name.startswith("~"):
        return " (a quoted ~ is not your home folder: leave it unquoted or write the path out)"
    return ""


def _stream_name(stream: object) -> str:
    """The name messages give an open file, once it is known to be a binary one."""
    if isinstance(stream, (bytes, bytearray, memoryview)):
        raise InputError("load_image takes a path or an open binary file, got bytes: wrap an "
                         "image's bytes in io.BytesIO(...); give a path as str (os.fsdecode)")
    if isinstance(stream, io.TextIOBase) or not hasattr(stream, "read"):
        raise InputError(f"load_image takes a path or a file opened in binary mode ('rb'), got "
                         f"{type(stream).__name__}")
    return display_name(str(getattr(stream, "name", "<stream>")))


def read_bounded(stream: BinaryIO, name: str) -> io.BytesIO:
    """At most ``MAX_FILE_BYTES`` of ``stream`` (e.g. stdin) in memory, named ``name``."""
    data = stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{name}: more than {MAX_FILE_BYTES:,} bytes, the most one image may "
                         f"hold (imagenet.MAX_FILE_BYTES): is this an image?")
    buffer = io.BytesIO(data)
    buffer.name = name  # how messages name it
    return buffer


def _decode(path: str | os.PathLike | BinaryIO, name: str,
            exif_orientation: bool) -> tuple[Image.Image, int]:
    """Open, fully decode and convert to RGB, turning Pillow's many failures into one
    InputError; also return the EXIF orientation tag (1 when absent)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
            orientation = _orientation(image)
            if exif_orientation:
                image = ImageOps.exif_transpose(image)
            return _to_rgb(image, name), orientation
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise InputError(f"{name}: refused, more than {Image.MAX_IMAGE_PIXELS:,} pixels "
                         f"(a possible decompression bomb)") from None
    except UnidentifiedImageError:
        raise NotAnImageError(f"{name}: not an image file Pillow can read") from None
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001
        # Decoders meet arbitrary bytes here and fail in many ways (OSError, SyntaxError,
        # struct.error, IndexError, ...): at this boundary every failure means "bad file".
        raise InputError(f"{name}: damaged or truncated image ({type(error).__name__}: "
                         f"{error})") from None


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation tag, 1 to 8; 1 (upright) when absent or unreadable."""
    try:
        orientation = image.getexif().get(ORIENTATION_TAG, UPRIGHT)
    except Exception:  # noqa: BLE001 (damaged EXIF is no reason to refuse the pixels)
        return UPRIGHT
    return orientation if orientation in range(1, 9) else UPRIGHT


def _to_rgb(image: Image.Image, name: str) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; deeper pixels scaled from their mode's range."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        pixels = np.asarray(image, dtype=np.float64)  # (H, W)
        low, high = _pixel_range(image, name, pixels)
        eight_bits = np.round((pixels - low) * (255 / (high - low)))
        image = Image.fromarray(eight_bits.astype(np.uint8), mode="L")
    return image.convert("RGB") if image.mode != "RGB" else image


def _pixel_range(image: Image.Image, name: str, pixels: np.ndarray) -> tuple[float, float]:
    """The range a single-channel image's values are drawn from: its mode's, or its file's."""
    low, high = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
    if image.mode == "F":
        if low < 0 or high > 1:
            raise InputError(f"{name}: floating-point pixels span [{low:.4g}, {high:.4g}], not "
                             f"[0, 1]: save the image as 8-bit")
        return 0.0, 1.0
    bits, signed = 16, False  # Pillow reads 16-bit PNG, PGM and TIFF as I;16 or I, 0..65535
    if image.mode == "I" and image.format == "TIFF":  # BitsPerSample, SampleFormat (2: signed)
        bits = int(np.max(image.tag_v2.get(258, (32,))))
        signed = image.tag_v2.get(339, 1) in (2, (2,))
    if low < 0:
        raise InputError(f"{name}: signed {bits}-bit pixels, some negative ({low:.6g}): not a "
                         f"photo; save the image as 8-bit")
    return 0.0, float(2 ** (bits - signed) - 1)


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
        raise InputError(f"probs must be 2-D (N, classes), got shape {probs.shape}")
    if not 1 <= top <= probs.shape[1]:
        raise InputError(f"top must be in 1..{probs.shape[1]}, got {top}")
    if not np.isfinite(probs).all():  # NaN sorts anywhere: a ranking of them means nothing
        raise InputError(f"probs holds {np.count_nonzero(~np.isfinite(probs))} NaN or infinite "
                         f"values: the model's answer is meaningless (invalid weights or input?)")
    return np.argsort(-probs, axis=1, kind="stable")[:, :top]


def decode_predictions(probs: np.ndarray, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """Keras's ``decode_predictions``: for each row of (N, 1000), the best ``top`` as
    (wnid, label, probability), best first. Rows of 1001 (TFLite's hosted and TF Hub files)
    have "background" (wnid "") first, then ImageNet's 1000: column i is class i - 1."""
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] not in (1000, 1001):
        raise InputError(f"decode_predictions needs ImageNet scores (N, 1000) or (N, 1001), "
                         f"got shape {probs.shape}")
    classes = imagenet_classes()
    if probs.shape[1] == 1001:
        classes = (("", "background"), *classes)
    return [[(*classes[i], float(row[i])) for i in best]
            for row, best in zip(probs, top_k(probs, top), strict=True)]
