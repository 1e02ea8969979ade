"""``classify_tflite``: top-k labels from a .tflite classifier (``classify --tflite``).

Needs NumPy, Pillow and ``flatbuffers`` only: no TensorFlow (tested in a process where
importing it fails). Returns what ``classify --json`` prints.

Labels, first found wins: the labels file packed in the .tflite's metadata, a user's
``labels`` file, then by the number of classes: 1000 is ImageNet, 1001 is ImageNet after a
"background" class 0 (Google's hosted and TF Hub files: output i is ImageNet class i - 1),
anything else is labelled by index.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import ops
from ..classify import classify_images
from ..errors import InputError
from ..imagenet import imagenet_classes
from .model import TFLiteModel, load_tflite

BACKGROUND = ("", "background")  # class 0 of 1001-class files: not an ImageNet class
MAX_LABELS_BYTES = 1 << 20


def read_labels(path: str | os.PathLike) -> list[str]:
    """A labels file: one label per line (trailing blank lines dropped), at most 1 MB."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_LABELS_BYTES + 1)
    except OSError as error:
        raise InputError(f"{path}: cannot read this labels file "
                         f"({(error.strerror or str(error)).lower()})") from None
    if len(data) > MAX_LABELS_BYTES:
        raise InputError(f"{path}: a labels file over 1 MB: give one label per line")
    lines = [line.strip() for line in data.decode("utf8", "replace").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def class_names(count: int, labels: Sequence[str] | None = None) -> tuple[tuple[str, str], ...]:
    """(wnid, label) for each of ``count`` outputs: the ImageNet wnids when the count is 1000 or
    1001 (the labels given, if any, replace the names), else "" and the label or ``class i``."""
    if count == 1000:
        known = imagenet_classes()
    elif count == 1001:
        known = (BACKGROUND, *imagenet_classes())
    else:
        known = tuple(("", f"class {i}") for i in range(count))
    if labels is None:
        return known
    return tuple((wnid, label) for (wnid, _), label in zip(known, labels, strict=True))


def probabilities(model: TFLiteModel, pixels: np.ndarray) -> np.ndarray:
    """(N, K) probabilities: the model's own softmax, or a float softmax of its logits."""
    out = model.predict(pixels, check_range=False)
    out = out.reshape(len(out), -1)
    if any(op.opcode == "SOFTMAX" for op in model.graph.operators):
        return out
    return ops.softmax(out)


class Int8Classifier:
    """A .tflite classifier as ``classify`` runs it: its input size, ``expects_pixels`` (its
    ``predict`` takes 0-255 pixels), ``classes`` ((wnid, label) per output) and
    ``predict(pixels) -> (N, K)`` float probabilities."""

    expects_pixels = True

    def __init__(self, model: TFLiteModel, source: str = "the model",
                 labels: str | os.PathLike | None = None) -> None:
        if len(model.input.shape) != 4 or len(model.output.shape) not in (2, 4):
            raise InputError(f"{source}: not an image classifier (input {model.input.shape}, "
                             f"output {model.output.shape})")
        count = int(model.output.shape[-1])
        names = model.labels or (read_labels(labels) if labels is not None else None)
        if names is not None and len(names) != count:
            raise InputError(f"{Path(labels)}: {len(names)} labels, but {source} has {count} "
                             f"outputs: give one label per line, in output order")
        self.model, self.classes = model, class_names(count, names)
        self.size = tuple(int(n) for n in model.input.shape[1:3])  # (H, W)
        self.one_at_a_time = model.input.shape[0] == 1  # a file fixed to batch 1

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        if self.one_at_a_time:
            return np.concatenate([probabilities(self.model, image[None]) for image in pixels])
        return probabilities(self.model, pixels)


def classify_tflite(path: str | os.PathLike | bytes, images: Sequence[str], top: int = 5,
                    interpolation: str = "nearest", exif: bool = False,
                    labels: str | os.PathLike | None = None) -> list[dict]:
    """Classify images (files, folders, ``-``) with a .tflite classifier.

    Returns what ``classify --tflite --json`` prints: ``[{"image", "predictions": [...]}]``,
    and ``{"image", "error"}`` for an image that could not be read. Each image is resized to
    the model's input and given to ``TFLiteModel.predict`` as pixels (the file's own
    preprocessing); ``labels`` names the classes when the file packs no labels of its own.
    """
    classifier = Int8Classifier(load_tflite(path), str(path), labels)
    return classify_images(classifier, list(images), classifier.size, top, interpolation, exif)
