"""What a weights file holds, ``{layer name: {weight name: array}}``, and how to read its shapes.

A leaf: the file readers (``keras_files.py``, ``weights.py``) fill a ``Stored``, and each
family's ``recognise`` (``families/``) reads its options off the shapes with the helpers here.
"""

from __future__ import annotations

from collections.abc import Callable


class Stored(dict):
    """What a weights file holds, ``{layer name: {weight name: array}}``, and where it came from."""

    def __init__(self, *args, layout: str = "weights given in memory", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.layout = layout  # e.g. "Keras 3 weights (.weights.h5)"
        self.source = "the weights given"  # the file's path, once read from one


def kernel_shape(stored: Stored, layer: str) -> tuple[int, ...] | None:
    """The shape of a stored layer's first array (its kernel), or None if the layer is absent."""
    arrays = stored.get(layer)
    return next(iter(arrays.values())).shape if arrays else None


def top_options(stored: Stored, classifier: str) -> dict:
    """``include_top`` and ``classes``, read off the classifier layer's bias if it is there."""
    arrays = stored.get(classifier)
    if not arrays:
        return {"include_top": False}
    bias = arrays.get("bias", list(arrays.values())[-1])
    return {"include_top": True, "classes": int(bias.shape[0])}


def published_width(filters: int, base: int, alphas: tuple[float, ...],
                    rounding: Callable[[float], int]) -> float:
    """The published alpha whose rounded ``base * alpha`` equals ``filters`` (else the ratio)."""
    matches = [alpha for alpha in alphas if rounding(base * alpha) == filters]
    return matches[0] if matches else filters / base
