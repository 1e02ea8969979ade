"""Classify images (files, folders, stdin): top-k ImageNet labels out, per image, in order.

Nothing here prints: failures are kept per image and logged, skipped files are logged as
notes, progress goes to ``progress.ProgressBar``; the command line shows them on stderr.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

from .errors import InputError
from .imagenet import NotAnImageError, display_name, imagenet_classes, load_image, preprocess_input, top_k
from .progress import ProgressBar, logger

CHUNK = 32  # images decoded and run together: a batch for every core's lane


def image_sources(arguments: list[str]) -> list[tuple[str, object, bool]]:
    """(printable name, what ``load_image`` reads, came from a folder) per image to classify.

    A folder gives its files, sorted (not its subfolders or hidden files); ``-`` gives the one
    image on standard input.
    """
    sources = []
    for argument in arguments:
        if argument == "-":
            stdin = io.BytesIO(sys.stdin.buffer.read())
            stdin.name = "-"  # how messages name it
            sources.append(("-", stdin, False))
        elif Path(argument).is_dir():
            children = sorted(p for p in Path(argument).iterdir()
                              if p.is_file() and not p.name.startswith("."))
            sources += [(display_name(child), child, True) for child in children]
        else:
            sources.append((display_name(argument), argument, False))
    return sources


def classify_images(model, arguments: list[str], size: int | tuple[int, int], top: int,
                    interpolation: str = "nearest", exif: bool = False) -> list[dict]:
    """Classify every image, in order, with any ``model`` that has ``expects_pixels`` and
    ``predict(x) -> (N, 1000)`` probabilities (a ``Network``, an int8 ``Int8Classifier``).

    Returns ``[{"image", "predictions": [{"index", "wnid", "label", "probability"}]}]``; a bad
    image is kept as ``{"image", "error"}`` (and logged as an error), and the rest finish. Files
    in a folder that are not images at all are skipped (logged as a warning).
    """
    sources = image_sources(arguments)
    results: list[dict] = []
    bar = ProgressBar(len(sources) if len(sources) > 3 else 0, "classifying")
    for start in range(0, len(sources), CHUNK):
        chunk, batch = [], []
        for name, source, in_folder in sources[start:start + CHUNK]:
            try:
                pixels = load_image(source, size, interpolation, exif)
            except NotAnImageError as error:
                if in_folder:
                    logger.warning("skipped %s (not an image)", name)
                    continue
                results.append(_failed(name, error))
                continue
            except (ValueError, OSError) as error:
                results.append(_failed(name, error))
                continue
            chunk.append(len(results))
            results.append({"image": name})
            batch.append(pixels if model.expects_pixels else preprocess_input(pixels))
        if batch:
            probs = model.predict(np.stack(batch))  # (n, 1000), the chunk in per-core lanes
            for index, row, best in zip(chunk, probs, top_k(probs, top), strict=True):
                results[index]["predictions"] = _predictions(row, best)
        bar.update(min(start + CHUNK, len(sources)))
    bar.close()
    if not results:
        raise InputError("no images to classify (the folders given hold none)")
    return results


def _failed(name: str, error: Exception) -> dict:
    """Log one image's failure now (the command line shows it at once) and keep it."""
    message = str(error)
    logger.error("%s", message)
    return {"image": name, "error": message}


def _predictions(probs: np.ndarray, best: np.ndarray) -> list[dict]:
    """One image's probabilities (1000,) at the class indices ``best``, labelled."""
    classes = imagenet_classes()
    return [{"index": int(i), "wnid": classes[i][0], "label": classes[i][1],
             "probability": float(probs[i])} for i in best]
