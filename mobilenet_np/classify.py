"""Classify images (files, folders, stdin): top-k ImageNet labels out, per image, in order.

Nothing here prints: failures are kept per image and logged, skipped files are logged as
notes, progress goes to ``progress.ProgressBar``; the command line shows them on stderr.
"""

from __future__ import annotations

import inspect
import os
import stat
import sys
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from .errors import InputError
from .imagenet import (
    UPRIGHT,
    NotAnImageError,
    display_name,
    imagenet_classes,
    preprocess_input,
    read_bounded,
    read_image,
    top_k,
)
from .progress import ProgressBar, logger

CHUNK = 32  # images decoded and run together: a batch for every core's lane
CHUNK_PIXELS = CHUNK * 224 * 224  # larger images come in smaller chunks (one 4096^2 at a time)


def chunk_size(size: int | tuple[int, int]) -> int:
    """Images per chunk at this input size: ``CHUNK``, fewer for large inputs, at least 1."""
    height, width = (size, size) if isinstance(size, int) else size
    return max(1, min(CHUNK, CHUNK_PIXELS // (height * width)))


@dataclass
class Source:
    """One image to read: its printable name, what ``read_image`` reads, from a folder or not."""

    name: str
    read: str | os.PathLike | BinaryIO
    in_folder: bool = False


def image_sources(arguments: list[str], stdin: BinaryIO | None = None) -> list[Source | dict]:
    """The images to classify, in order: a ``Source`` each, or the result already known.

    A folder gives its files, sorted; what it holds that is not a file (subfolders, pipes,
    devices) or is hidden is skipped as ``{"image", "skipped": why}``, logged as a note. ``-``
    gives the one image on standard input, read up to ``imagenet.MAX_FILE_BYTES``. A folder
    that cannot be listed, or ``-`` given twice, is an ``{"image", "error"}``.
    """
    items: list[Source | dict] = []
    stdin_read = False
    for argument in arguments:
        if argument == "-":
            if stdin_read:
                items.append(failed("-", "-: standard input was read already: give - once"))
                continue
            stdin_read = True
            try:
                items.append(Source("-", read_bounded(stdin or sys.stdin.buffer, "-")))
            except (InputError, OSError) as error:
                items.append(failed("-", error))
        elif _is_folder(argument):
            items += folder_sources(argument)
        else:
            items.append(Source(display_name(argument), argument))
    return items


def _is_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder; a path that cannot even be looked at is left to
    ``read_image``, which names what is wrong with it (too long, a loop, ...)."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def folder_sources(folder: str | os.PathLike) -> list[Source | dict]:
    """A folder's files as sources, sorted by name; the rest skipped, saying why."""
    name = display_name(folder)
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: os.fsencode(entry.name))
    except OSError as error:
        return [failed(name, f"{name}: cannot list this folder: "
                             f"{(error.strerror or str(error)).lower()}")]
    items: list[Source | dict] = []
    for entry in entries:
        path = os.path.join(folder, entry.name)
        why = _skip_reason(entry)
        items.append(skipped(display_name(path), why) if why else
                     Source(display_name(path), path, in_folder=True))
    return items


def _skip_reason(entry: os.DirEntry) -> str | None:
    """Why a folder entry is not classified, or None to try it (links that lead nowhere are
    tried: ``read_image`` names where they lead)."""
    if entry.name.startswith("."):
        return "hidden"
    try:
        if entry.is_dir():
            return "a folder: classify does not look inside folders in folders"
        if entry.is_file() or entry.is_symlink():
            return None
    except OSError:
        return None
    return "not a regular file (a pipe, a socket or a device)"


def failed(name: str, error: Exception | str) -> dict:
    """One image's failure, as the results keep it."""
    return {"image": name, "error": str(error)}


def skipped(name: str, why: str) -> dict:
    """A folder entry that is not classified, as the results keep it (``--json`` lists it)."""
    return {"image": name, "skipped": why}


def _kept(entry: dict) -> dict:
    """Log a failure (error) or a skipped file (note) as it takes its place in the results:
    the command line shows it at once, in order."""
    if "error" in entry:
        logger.error("%s", entry["error"])
    elif "skipped" in entry:
        logger.warning("skipped %s (%s)", entry["image"], entry["skipped"])
    return entry


def classify_images(model, arguments: list[str], size: int | tuple[int, int], top: int,
                    interpolation: str = "nearest", exif: bool = False,
                    crop_pct: float | None = None) -> list[dict]:
    """Classify every image, in order, with any ``model`` that has ``expects_pixels`` and
    ``predict(x) -> (N, 1000)`` probabilities (a ``Network``, an int8 ``Int8Classifier``).

    Returns ``[{"image", "predictions": [{"index", "wnid", "label", "probability"}]}]``; an
    image that cannot be read (or that the model answers NaN for) is kept as
    ``{"image", "error"}`` and logged as an error, and the rest finish; what a folder holds
    that is not an image is ``{"image", "skipped"}``, logged as a note. Images whose EXIF
    orientation is not upright, read as stored (``exif=False``, as Keras reads them), are
    counted in one note at the end. ``crop_pct`` resizes and centre-crops as timm evaluates
    (``imagenet.resize_and_crop``) instead of squeezing the whole photo to ``size``.
    """
    items = image_sources(arguments)
    results: list[dict] = []
    unrotated = 0
    bar = ProgressBar(len(items) if len(items) > 3 else 0, "classifying")
    step = chunk_size(size)
    for start in range(0, len(items), step):
        chunk, batch = [], []
        for item in items[start:start + step]:
            if isinstance(item, dict):
                results.append(_kept(item))
                continue
            try:
                pixels, orientation = read_image(item.read, size, interpolation, exif, crop_pct)
            except NotAnImageError as error:
                results.append(_kept(skipped(item.name, "not an image") if item.in_folder
                                     else failed(item.name, error)))
                continue
            except (ValueError, OSError, MemoryError) as error:
                results.append(_kept(failed(item.name, error if str(error) else
                                            f"{item.name}: {type(error).__name__}")))
                continue
            unrotated += orientation != UPRIGHT and not exif
            chunk.append(len(results))
            results.append({"image": item.name})
            batch.append(pixels if model.expects_pixels else preprocess_input(pixels))
        if batch:
            probs = _predict(model, np.stack(batch))  # (n, 1000), the chunk in per-core lanes
            for index, row in zip(chunk, probs, strict=True):
                results[index] = _labelled(results[index]["image"], row, top,
                                           getattr(model, "classes", None) or imagenet_classes())
        bar.update(min(start + step, len(items)))
    bar.close()
    if unrotated:
        told = "1 image carries" if unrotated == 1 else f"{unrotated} images carry"
        logger.warning("%s an EXIF orientation, but %s read as stored, not upright (as Keras "
                       "reads them): --exif (exif=True) turns them first", told,
                       "it was" if unrotated == 1 else "they were")
    if not any("skipped" not in result for result in results):
        raise InputError("no images to classify (the folders given hold none)")
    return results


def _predict(model, x: np.ndarray) -> np.ndarray:
    """(N, 1000) probabilities; the range check is off where the model has one: classify
    scaled the pixels itself, so a refusal could only be a bright or dark photo mistaken."""
    if "check_range" in inspect.signature(model.predict).parameters:
        return model.predict(x, check_range=False)
    return model.predict(x)


def _labelled(name: str, probs: np.ndarray, top: int, classes: tuple[tuple[str, str], ...]) -> dict:
    """One image's result from its probabilities (K,): the best ``top``, labelled by ``classes``
    ((wnid, label) per output: ImageNet's, or a .tflite file's own); NaN
    (weights that pass every load check yet break) is this image's error, never printed."""
    if not np.isfinite(probs).all():
        return _kept(failed(name, f"{name}: the model answered NaN or infinity: its weights are "
                            f"invalid (a negative batch-norm variance?)"))
    return {"image": name, "predictions": [
        {"index": int(i), "wnid": classes[i][0], "label": classes[i][1],
         "probability": float(probs[i])} for i in top_k(probs[None], top)[0]]}
