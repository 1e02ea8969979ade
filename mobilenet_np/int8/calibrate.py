"""Post-training quantization's arithmetic: activation ranges, and scales chosen as TFLite's converter does.

Activations: per-tensor *asymmetric* int8. The range [lo, hi] of each tensor over the
calibration images (plain min/max, as TFLite's calibrator records them) is widened to hold 0,
so that real 0 (ReLU's floor, a convolution's zero padding) is an exact integer, the zero
point. ``scale = (hi - lo) / 255``, and the zero point is ``-128 - lo / scale`` rounded to an
integer (``affine_parameters``).

Weights: per-channel *symmetric* int8 with zero point 0 and the narrow range [-127, 127]:
``scale[c] = max |w[c]| / 127`` (``symmetric_per_channel``). Symmetric, because a zero point in
the weights would add a term ``zp * sum(x)`` to every accumulator; narrow, so that -w is as
representable as w. Biases: int32 at ``input_scale * weight_scale[c]``, the accumulator's own
scale, so the kernel adds them without rescaling (``quantize_bias``). Weights and biases are
rounded with TFLite's converter's float32 arithmetic (``tensorflow/lite/tools/optimize/
quantization_utils.cc``), so that the same folded float weights give the same integers.
"""

from __future__ import annotations

import numpy as np

from .fixedpoint import INT32_MAX, round_half_away

INT8_MIN, INT8_MAX = -128, 127
WEIGHT_MAX = 127  # narrow range: weights in [-127, 127]


def affine_parameters(lo: float, hi: float) -> tuple[np.float32, int]:
    """A real range -> (scale, zero point) for int8, as the MLIR quantizer nudges it.

    The range is widened to hold 0; the zero point is computed from whichever end loses less
    precision (``-128 - lo / scale`` or ``127 - hi / scale``), rounded half away from zero
    and clamped to [-128, 127]. All in double, the scale stored as float32. An all-zero
    range (a tensor that never left 0 on the calibration set) gets scale 1: any scale
    represents it exactly.
    """
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi == lo:
        return np.float32(1.0), 0
    scale = (hi - lo) / (INT8_MAX - INT8_MIN)
    from_min, from_max = INT8_MIN - lo / scale, INT8_MAX - hi / scale
    error_min = abs(INT8_MIN) + abs(lo / scale)
    error_max = abs(INT8_MAX) + abs(hi / scale)
    zero = from_min if error_min < error_max else from_max
    zero_point = int(np.clip(round_half_away(zero), INT8_MIN, INT8_MAX))
    return np.float32(scale), zero_point


def symmetric_per_channel(kernel: np.ndarray, axis: int, bias: np.ndarray,
                          input_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """float32 weights -> (int8 weights, float32 scales (C,)), one scale per index of ``axis``.

    As TFLite's converter (``SymmetricPerChannelQuantization``), in float32:
    ``scale[c] = max |w[c]| / 127`` and ``q = round(w * (127 / max |w[c]|))``, half away
    from zero, in [-127, 127]. A channel whose bias would not fit the middle half of int32
    at ``input_scale * scale[c]`` gets a wider scale first (``fit_bias``). Channels with
    all-zero weights and bias keep scale 0 (every q is 0; the kernel's multiplier is 0).
    """
    moved = np.moveaxis(kernel.astype(np.float32), axis, 0)  # (C, ...)
    flat = moved.reshape(len(moved), -1)  # (C, K)
    half_range = fit_bias(np.abs(flat).max(axis=1), bias, input_scale)  # (C,) float32
    inverse = np.zeros_like(half_range)
    np.divide(np.float32(WEIGHT_MAX), half_range, out=inverse, where=half_range > 0)
    q = np.clip(round_half_away(flat * inverse[:, None]), -WEIGHT_MAX, WEIGHT_MAX)
    q = np.moveaxis(q.reshape(moved.shape), 0, axis).astype(np.int8)
    return q, half_range / np.float32(WEIGHT_MAX)


def fit_bias(half_range: np.ndarray, bias: np.ndarray, input_scale: float) -> np.ndarray:
    """Widen per-channel weight ranges whose bias would overflow (TFLite's AdjustWeightsForBiasScale).

    A dead channel (a raw kernel of ~1e-13 and a BN moving variance of ~1e-22: real V1 0.25 has
    10, in conv1 and conv_pw_1/2/5/12; its gamma is ordinary) folds to weights as tiny beside a
    bias ~0.4: at ``input_scale * max|w| / 127`` that bias is far beyond int32. Where
    ``|b| >= 0.5 * input_scale * scale * INT32_MAX``, the range becomes
    ``2 |b| / INT32_MAX * (127 / input_scale)``, so the bias lands on about +-2^30 and the
    weights round to 0: the channel outputs its bias, as the float one nearly does.
    """
    scales = (half_range / np.float32(WEIGHT_MAX)).astype(np.float64)
    magnitude = np.abs(bias.astype(np.float32)).astype(np.float64)
    too_big = magnitude >= 0.5 * np.float64(np.float32(input_scale)) * scales * INT32_MAX
    widened = (2.0 * magnitude / INT32_MAX
               * np.float64(np.float32(WEIGHT_MAX) / np.float32(input_scale))).astype(np.float32)
    return np.where(too_big, widened, half_range.astype(np.float32))


def quantize_bias(bias: np.ndarray, input_scale: float, weight_scales: np.ndarray) -> tuple[np.ndarray,
                                                                                           np.ndarray]:
    """float32 bias (C,) -> (int32 bias, float32 scales (C,)) at ``input_scale * weight_scale[c]``.

    As TFLite's ``SymmetricBiasQuantize``: the scale is a float32 product, ``q = round(b *
    float32(1 / scale))`` in float32, half away from zero, clamped to +-INT32_MAX.
    """
    scales = np.float32(input_scale) * weight_scales.astype(np.float32)  # float32 product
    inverse = np.zeros_like(scales)
    np.divide(1.0, scales.astype(np.float64), out=inverse, casting="unsafe", where=scales > 0)
    q = round_half_away(bias.astype(np.float32) * inverse).astype(np.float64)
    return np.clip(q, -INT32_MAX, INT32_MAX).astype(np.int32), scales


def scalar_constant(value: float) -> tuple[np.ndarray, np.float32, int]:
    """A scalar constant operand (MUL's 1/6, ADD's -1) as int8: (q, scale, zero point).

    Its range is [min(v, 0), max(v, 0)], as for any tensor, so v lands on -128 or 127.
    """
    scale, zero_point = affine_parameters(value, value)
    q = int(np.clip(zero_point + np.round(value / np.float64(scale)), INT8_MIN, INT8_MAX))
    return np.array(q, np.int8), scale, zero_point


class RangeTracker:
    """Running min and max of every named tensor over calibration batches."""

    def __init__(self) -> None:
        self.ranges: dict[str, tuple[float, float]] = {}

    def update(self, name: str, values: np.ndarray) -> None:
        lo, hi = float(values.min()), float(values.max())
        if name in self.ranges:
            lo, hi = min(lo, self.ranges[name][0]), max(hi, self.ranges[name][1])
        self.ranges[name] = (lo, hi)

    def parameters(self, name: str) -> tuple[np.float32, int]:
        """(scale, zero point) of a tracked tensor."""
        return affine_parameters(*self.ranges[name])
