"""The layer kinds a Keras graph needs beyond MobileNet's own (``kinds.py``), one ``Kind`` each.

All are elementwise or reshapes: one NumPy expression with no loop to unroll, so each kernel
is its own loop twin (as ``kinds.py`` does for ``flatten``). Registering them here, through
``kinds.register_kind``, makes them run everywhere at once: ``forward``, unfused units of the
fused plan, the cost counters and ``summary``.

- ``scale_shift``: ``x * scale + offset``: Keras's ``Rescaling``, and the scalar ``+ 3.0`` and
  ``* (1 / 6)`` that MobileNetV3's hard-sigmoid is written with (scale or offset may be one
  number per channel);
- ``sigmoid``, ``swish``: the logistic function and ``x * sigmoid(x)`` (Keras's ``silu``);
- ``reshape``: a new shape for each image, the batch axis kept.
"""

from __future__ import annotations

import numpy as np

from .kinds import KINDS, Kind, register_kind
from .shapes import as_float32


def _scale_shift(x, layer, w):
    """(N, ...) * scale + offset, in float32 as Keras computes it (scale and offset: a number,
    or one per channel)."""
    scale = np.asarray(layer.options.get("scale", 1.0), np.float32)
    offset = np.asarray(layer.options.get("offset", 0.0), np.float32)
    return as_float32("x", x, "scale_shift") * scale + offset


def _sigmoid(x, layer, w):
    """1 / (1 + exp(-x)), written so that exp never overflows: exp(-|x|) <= 1."""
    x = as_float32("x", x, "sigmoid")
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(np.float32)


def _swish(x, layer, w):
    """x * sigmoid(x) (Keras's swish, or silu)."""
    return as_float32("x", x, "swish") * _sigmoid(x, layer, w)


def _reshape(x, layer, w):
    return x.reshape(len(x), *layer.output_shape)  # (N, *target): no arithmetic


GRAPH_KINDS = (
    Kind("scale_shift", _scale_shift, _scale_shift),
    Kind("sigmoid", _sigmoid, _sigmoid),
    Kind("swish", _swish, _swish),
    Kind("reshape", _reshape, _reshape),
)
for _kind in GRAPH_KINDS:
    if _kind.name not in KINDS:  # (imported once per process; a reload must not fail)
        register_kind(_kind)
