"""``classify_tflite``: top-k ImageNet labels from an int8 .tflite model (``classify --tflite``).

Needs NumPy, Pillow and ``flatbuffers`` only: no TensorFlow (tested in a process where
importing it fails). Returns what ``classify --json`` prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from .. import ops
from ..imagenet import imagenet_classes, load_image, preprocess_input, top_k
from .model import TFLiteModel, load_tflite

CHUNK = 32  # images decoded and run together
PIXELS_ABOVE = 2.0  # an input range reaching past this takes [0, 255] pixels (MobileNetV3)


def takes_pixels(model: TFLiteModel) -> bool:
    """Whether the model takes pixels in [0, 255] (V3 rescales itself) rather than [-1, 1].

    Read off the input's quantization: the largest real value an int8 input can hold is
    ``scale * (127 - zero_point)``; calibrated on [-1, 1] that is ~1, on pixels ~255.
    """
    scale, zero_point = model.input_quantization
    return float(scale) * (127 - zero_point) > PIXELS_ABOVE


def probabilities(model: TFLiteModel, x: np.ndarray) -> np.ndarray:
    """(N, 1000) probabilities: the model's own softmax, or a float softmax of its logits."""
    out = model.predict(x)
    if model.graph.operators[-1].opcode == "SOFTMAX":
        return out.reshape(len(out), -1)
    return ops.softmax(out.reshape(len(out), -1))


def _labelled(row: np.ndarray, best: np.ndarray) -> list[dict]:
    classes = imagenet_classes()
    return [{"index": int(i), "wnid": classes[i][0], "label": classes[i][1],
             "probability": float(row[i])} for i in best]


def classify_tflite(path: str | os.PathLike | bytes, images: Sequence[str | os.PathLike], top: int = 5,
                    interpolation: str = "nearest", exif: bool = False,
                    on_error: Callable[[str], None] | None = None) -> list[dict]:
    """Classify images with an int8 .tflite ImageNet model (1000 classes).

    Returns ``[{"image", "predictions": [{"index", "wnid", "label", "probability"}]}]``, best
    first, as ``classify --json``. The input size is the model's; pixels are scaled to [-1, 1]
    unless the model takes pixels (``takes_pixels``). An image that cannot be read is passed
    to ``on_error`` as one line and skipped (without ``on_error``: ``ValueError``).
    """
    model = load_tflite(path)
    height, width = model.input.shape[1:3]
    if model.output.shape[-1] != 1000:
        raise ValueError(f"{path}: classify needs a 1000-class ImageNet model, this one has "
                         f"{model.output.shape[-1]} outputs")
    pixels, results = takes_pixels(model), []
    for start in range(0, len(images), CHUNK):
        paths, batch = [], []
        for image in images[start:start + CHUNK]:
            try:
                loaded = load_image(image, (height, width), interpolation, exif)
            except (ValueError, OSError) as error:
                if on_error is None:
                    raise ValueError(str(error)) from None
                on_error(str(error))
                continue
            paths.append(image)
            batch.append(loaded if pixels else preprocess_input(loaded))
        if batch:
            probs = probabilities(model, np.stack(batch))  # (n, 1000)
            results += [{"image": str(p), "predictions": _labelled(row, best)}
                        for p, row, best in zip(paths, probs, top_k(probs, top), strict=True)]
    return results
