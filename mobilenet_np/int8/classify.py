"""``classify_tflite``: top-k ImageNet labels from an int8 .tflite model (``classify --tflite``).

Needs NumPy, Pillow and ``flatbuffers`` only: no TensorFlow (tested in a process where
importing it fails). Returns what ``classify --json`` prints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .. import ops
from ..classify import classify_images
from ..errors import UnsupportedError
from .model import TFLiteModel, load_tflite

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


class Int8Classifier:
    """An int8 .tflite ImageNet model as ``classify`` runs it: its input size, whether it takes
    pixels, and ``predict(x) -> (N, 1000)`` float probabilities."""

    def __init__(self, model: TFLiteModel, source: str = "the model") -> None:
        if model.output.shape[-1] != 1000:
            raise UnsupportedError(f"{source}: classify needs a 1000-class ImageNet model, this one "
                                   f"has {model.output.shape[-1]} outputs")
        if model.input.dtype != np.int8 or model.output.dtype != np.int8:
            raise UnsupportedError(f"{source}: takes {np.dtype(model.input.dtype).name} and gives "
                                   f"{np.dtype(model.output.dtype).name}; classify --tflite runs "
                                   f"full-integer models (int8 in and out: inference_input_type and "
                                   f"inference_output_type tf.int8)")
        self.model, self.expects_pixels = model, takes_pixels(model)
        self.size = tuple(int(n) for n in model.input.shape[1:3])  # (H, W)
        self.one_at_a_time = model.input.shape[0] == 1  # a file fixed to batch 1

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.one_at_a_time:
            return np.concatenate([probabilities(self.model, image[None]) for image in x])
        return probabilities(self.model, x)


def classify_tflite(path: str | os.PathLike | bytes, images: Sequence[str], top: int = 5,
                    interpolation: str = "nearest", exif: bool = False) -> list[dict]:
    """Classify images (files, folders, ``-``) with an int8 .tflite ImageNet model.

    Returns what ``classify --tflite --json`` prints: ``[{"image", "predictions": [...]}]``,
    and ``{"image", "error"}`` for an image that could not be read. The input size is the
    model's; pixels are scaled to [-1, 1] unless the model takes pixels (``takes_pixels``).
    """
    classifier = Int8Classifier(load_tflite(path), str(path))
    return classify_images(classifier, list(images), classifier.size, top, interpolation, exif)
