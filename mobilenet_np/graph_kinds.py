"""The layer kinds a Keras graph needs beyond MobileNet's own (``kinds.py``), one ``Kind`` each.

All are elementwise or reshapes: one NumPy expression with no loop to unroll, so each kernel
is its own loop twin (as ``kinds.py`` does for ``flatten``). Registering them here, through
``kinds.register_kind``, makes them run everywhere at once: ``forward``, unfused units of the
fused plan, the cost counters and ``summary``.

- ``scale_shift``: ``x * scale + offset``: Keras's ``Rescaling``, and the scalar ``+ 3.0`` and
  ``* (1 / 6)`` that MobileNetV3's hard-sigmoid is written with (scale or offset may be one
  number per channel);
- ``sigmoid``, ``swish``: the logistic function and ``x * sigmoid(x)`` (Keras's ``silu``);
- ``reshape``: a new shape for each image, the batch axis kept;
- ``normalization``: Keras's ``Normalization``, ``(x - mean) / max(sqrt(variance), 1e-7)``,
  with the mean and variance the file stores (adapted) or its config gives;
- ``average_pool``, ``max_pool``: a k x k window every ``stride`` pixels, as TensorFlow pools:
  with "same" padding, the padded positions are not counted (an edge window of 4 pixels is
  their mean, not a fifth of their sum). These have loops, so a loop twin of their own.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .kinds import Kind, register_kind
from .shapes import as_float32, resolve_padding


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


KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): the smallest standard deviation divided by


def _normalization_weights(layer) -> dict[str, tuple[int, ...]]:
    """The stored mean and variance (C,), unless the config gives them."""
    channels = layer.input_shape[-1]
    return {} if "mean" in layer.options else {"mean": (channels,), "variance": (channels,)}


def _normalize(x, layer, w):
    """(x - mean) / max(sqrt(variance), epsilon), per channel, as Keras computes it."""
    mean = np.asarray(layer.options.get("mean", w.get("mean")), np.float32)
    variance = np.asarray(layer.options.get("variance", w.get("variance")), np.float32)
    return (as_float32("x", x, "normalization") - mean) / np.maximum(
        np.sqrt(variance), np.float32(KERAS_EPSILON))


def _padded(x, layer, fill: float) -> tuple[np.ndarray, tuple]:
    """x (N, H, W, C) with the layer's pads filled with ``fill``; and the pads."""
    k, s = (layer.kernel, layer.kernel), (layer.stride, layer.stride)
    pads = resolve_padding(layer.padding, x.shape[1:3], k, s, layer.name)
    return np.pad(as_float32("x", x, layer.kind), ((0, 0), *pads, (0, 0)), constant_values=fill), pads


def _pool(average: bool):
    """(N, H, W, C) -> (N, Ho, Wo, C): every window's mean or max, NaN marking the padding."""
    reduce = np.nanmean if average else np.nanmax

    def run(x, layer, w):
        padded, _ = _padded(x, layer, np.nan)
        out_h, out_w = layer.output_shape[:2]
        s = layer.stride
        windows = sliding_window_view(padded, (layer.kernel, layer.kernel), axis=(1, 2))
        windows = windows[:, ::s, ::s][:, :out_h, :out_w]  # (N, Ho, Wo, C, k, k), a view
        return reduce(windows, axis=(-2, -1)).astype(np.float32)
    return run


def _pool_twin(average: bool):
    """The loop twin: each output pixel from the window's pixels inside the image, one by one."""
    def run(x, layer, w):
        padded, pads = _padded(x, layer, np.nan)
        out_h, out_w, _ = layer.output_shape
        k, s = layer.kernel, layer.stride
        out = np.empty((len(x), *layer.output_shape), np.float32)
        for i in range(out_h):
            for j in range(out_w):
                total = count = best = None
                for di in range(k):
                    for dj in range(k):
                        tap = padded[:, i * s + di, j * s + dj]  # (N, C)
                        if np.isnan(tap).all():
                            continue  # a padded position: not counted
                        total = tap if total is None else total + tap
                        best = tap if best is None else np.maximum(best, tap)
                        count = (count or 0) + 1
                out[:, i, j] = total / np.float32(count) if average else best
        return out
    return run


GRAPH_KINDS = (
    Kind("scale_shift", _scale_shift, _scale_shift),
    Kind("sigmoid", _sigmoid, _sigmoid),
    Kind("swish", _swish, _swish),
    Kind("reshape", _reshape, _reshape),
    Kind("normalization", _normalize, _normalize, _normalization_weights),
    Kind("average_pool", _pool(True), _pool_twin(True)),
    Kind("max_pool", _pool(False), _pool_twin(False)),
)
for _kind in GRAPH_KINDS:
    register_kind(_kind)  # a name already taken is an error, never a silent swap
