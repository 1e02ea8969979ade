"""Vectorised int8 kernels, bit for bit TensorFlow Lite's builtin integer kernels.

Loop twins live in ``reference.py``. Layouts are TFLite's: activations NHWC int8 (or uint8,
the asymmetric scheme of Jacob et al. 2018, whose kernels are the same integer arithmetic
with other zero points and a [0, 255] clamp), CONV_2D kernels ``(Cout, kh, kw, Cin)``,
DEPTHWISE_CONV_2D kernels ``(1, kh, kw, C * M)``, FULLY_CONNECTED weights ``(Cout, Cin)``,
biases int32. Weights come centred (``graph.centred_weights``): int8 as stored, uint8 minus
their zero point (int32 in [-255, 255]). Kernels return their ``Requantize``'s dtype.

Float hardware doing integer work exactly: convolutions here run as float64 matrix
products (BLAS), and that is exact, not approximate. A float64 holds every integer below
2^53. Each product is ``(x - x_zero_point) * w`` with |x - zp| <= 255 and |w| <= 128, so
below 2^15 (raw int8 x int8 products are at most 128 * 128 = 2^14; centred uint8 weights,
|w - zp| <= 255, below 2^16); a sum of K such products, and every partial sum on the way in
any order, stays below K * 2^16, which is < 2^53 for any K < 2^37. No rounding can happen,
so the float64 result *is* the integer sum; tests check it equals an int64 computation.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..shapes import Pads, resolve_padding
from .fixedpoint import (
    Requantize,
    multiply_by_quantized_multiplier,
    round_half_away,
    rounding_divide_by_pot,
)


def _windows(x: np.ndarray, kernel_hw, stride, pads: Pads, fill: int) -> np.ndarray:
    """Receptive fields as a strided view: (N, H, W, C) -> (N, Ho, Wo, C, kh, kw).

    Padding holds ``fill``: the input zero point for convolutions (real value 0, so padded
    taps add nothing once the zero point is subtracted).
    """
    if any(any(p) for p in pads):
        x = np.pad(x, ((0, 0), *pads, (0, 0)), constant_values=fill)
    windows = sliding_window_view(x, kernel_hw, axis=(1, 2))  # (N, Hp-kh+1, Wp-kw+1, C, kh, kw)
    return windows[:, ::stride[0], ::stride[1]]


def conv2d_accumulators(x: np.ndarray, x_zero_point: int, kernel: np.ndarray,
                        stride: tuple[int, int] = (1, 1), padding: str = "SAME") -> np.ndarray:
    """CONV_2D's int32 sums ``sum (x - zp) * w``, by im2col and one float64 matrix product (exact).

    x (N, H, W, Cin) int8, kernel (Cout, kh, kw, Cin) int8 -> (N, Ho, Wo, Cout) int64.
    """
    cout, kh, kw, cin = kernel.shape
    pads = resolve_padding(padding, x.shape[1:3], (kh, kw), stride, "int8")
    centred = x.astype(np.float64) - x_zero_point  # (N, H, W, Cin), in [-255, 255]
    windows = _windows(centred, (kh, kw), stride, pads, 0)  # (N, Ho, Wo, Cin, kh, kw)
    n, out_h, out_w = windows.shape[:3]
    cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * out_h * out_w, kh * kw * cin)
    acc = cols @ kernel.reshape(cout, kh * kw * cin).T.astype(np.float64)  # (P, Cout): BLAS, exact
    return acc.astype(np.int64).reshape(n, out_h, out_w, cout)


def conv2d(x: np.ndarray, x_zero_point: int, kernel: np.ndarray, bias: np.ndarray,
           out: Requantize, stride: tuple[int, int] = (1, 1), padding: str = "SAME") -> np.ndarray:
    """CONV_2D, int8: exact integer sums (``conv2d_accumulators``) + bias, requantized.

    Parameters
    ----------
    x : (N, H, W, Cin) int8
    kernel : (Cout, kh, kw, Cin) int8, symmetric (zero point 0), per-channel scales
    bias : (Cout,) int32, on scale input_scale * weight_scale[c]
    out : the per-channel requantization and the fused activation's clamp

    Returns
    -------
    (N, Ho, Wo, Cout) int8
    """
    return out.apply(conv2d_accumulators(x, x_zero_point, kernel, stride, padding) + bias)


def depthwise_conv2d(x: np.ndarray, x_zero_point: int, kernel: np.ndarray, bias: np.ndarray,
                     out: Requantize, stride: tuple[int, int] = (1, 1), padding: str = "SAME",
                     depth_multiplier: int = 1) -> np.ndarray:
    """DEPTHWISE_CONV_2D, int8: one int32 multiply-add pass per tap.

    x (N, H, W, C) int8; kernel (1, kh, kw, C * M) int8, output channel ``c * M + m`` reads
    input channel c; bias (C * M,) int32 -> (N, Ho, Wo, C * M) int8.
    """
    _, kh, kw, channels_out = kernel.shape
    pads = resolve_padding(padding, x.shape[1:3], (kh, kw), stride, "int8")
    centred = x.astype(np.int32) - x_zero_point  # (N, H, W, C)
    if depth_multiplier > 1:
        centred = centred.repeat(depth_multiplier, axis=3)  # (N, H, W, C * M): channel c*M + m
    windows = _windows(centred, (kh, kw), stride, pads, 0)  # (N, Ho, Wo, C*M, kh, kw)
    acc = np.zeros(windows.shape[:4], np.int32)  # |sum| <= kh * kw * 255 * 255: fits int32
    for i in range(kh):
        for j in range(kw):
            acc += windows[..., i, j] * kernel[0, i, j].astype(np.int32)
    return out.apply(acc.astype(np.int64) + bias)


def fully_connected(x: np.ndarray, x_zero_point: int, weights: np.ndarray, bias: np.ndarray | None,
                    out: Requantize) -> np.ndarray:
    """FULLY_CONNECTED, int8: (N, Cin) int8 @ (Cout, Cin).T int8 + bias, exact in float64."""
    acc = (x.astype(np.float64) - x_zero_point) @ weights.T.astype(np.float64)  # (N, Cout)
    acc = acc.astype(np.int64)
    if bias is not None:
        acc += bias
    return out.apply(acc)


def add(a: np.ndarray, b: np.ndarray, params) -> np.ndarray:
    """ADD (or SUB), int8, broadcasting: both inputs moved to a shared scale with 20 bits of headroom.

    Each input ``(q - zp) << 20`` is scaled by its multiplier (< 1, double rounding), the two
    are summed (SUB: subtracted, ``params.b_sign``), and the result is requantized to the
    output (``params``: see graph.AddParams).
    """
    scaled = [_scale_pot(((q.astype(np.int64) - zp) << params.left_shift), m, s)
              for q, zp, m, s in ((a, params.a_zero_point, params.a_multiplier, params.a_shift),
                                  (b, params.b_zero_point, params.b_multiplier, params.b_shift))]
    return params.out.apply(scaled[0] + params.b_sign * scaled[1])


def _scale_pot(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0), double rounding."""
    return Requantize(multiplier, shift, 0, rounding="double").scaled(x)


def mul(a: np.ndarray, a_zero_point: int, b: np.ndarray, b_zero_point: int, out: Requantize) -> np.ndarray:
    """MUL, int8, broadcasting: ``(a - za) * (b - zb)`` as int32, requantized once."""
    return out.apply((a.astype(np.int64) - a_zero_point) * (b.astype(np.int64) - b_zero_point))


NEON_BLOCK = 16  # TFLite's MEAN kernel handles channels 16 at a time, then one by one


def mean_hw(x: np.ndarray, multiplier: int, shift: int, bias: int, dtype: type = np.int8) -> np.ndarray:
    """MEAN over H and W with keep_dims (global average pooling): TFLite's optimized int8 kernel.

    The raw int8 values are summed (no zero point); one multiplier holds
    in_scale / (H * W * out_scale), and ``bias`` = out_zp - round(in_zp * in_scale / out_scale)
    brings the zero points in. Whole blocks of 16 channels are rescaled by the vector code
    (ties up), the last C mod 16 channels by the scalar code (ties away from zero).
    x (N, H, W, C) int8 -> (N, 1, 1, C) int8 (uint8 likewise, clamped to [0, 255]).
    """
    total = x.astype(np.int64).sum(axis=(1, 2), keepdims=True)  # (N, 1, 1, C), |.| < H*W*2^7
    cut = x.shape[3] // NEON_BLOCK * NEON_BLOCK
    scaled = np.concatenate(
        [multiply_by_quantized_multiplier(total[..., :cut], multiplier, shift, "double_up"),
         multiply_by_quantized_multiplier(total[..., cut:], multiplier, shift, "double")], axis=3)
    info = np.iinfo(dtype)
    return np.clip(scaled + bias, info.min, info.max).astype(dtype)


def mean(x: np.ndarray, x_zero_point: int, axes: tuple[int, ...], out: Requantize,
         keep_dims: bool) -> np.ndarray:
    """MEAN over any axes, int8: TFLite's reference integer path (QuantizedMeanOrSum).

    ``sum(x - zp)`` over the axes, times ``out``'s multiplier, which already holds the
    division by the element count (see graph.prepare_mean), plus the output zero point.
    """
    total = (x.astype(np.int64) - x_zero_point).sum(axis=axes, keepdims=keep_dims)
    return out.apply(total)


def average_pool2d(x: np.ndarray, filter_hw: tuple[int, int], stride: tuple[int, int],
                   padding: str, lo: int = -128, hi: int = 127, dtype: type = np.int8) -> np.ndarray:
    """AVERAGE_POOL_2D, int8 or uint8 (same scale in and out): window sum / taps inside the image.

    Padded taps are not counted; the division rounds half away from zero, in integers.
    (N, H, W, C) -> (N, Ho, Wo, C).
    """
    pads = resolve_padding(padding, x.shape[1:3], filter_hw, stride, "int8")
    inside = _windows(np.ones((1, *x.shape[1:3], 1), np.int64), filter_hw, stride, pads, 0)
    count = inside.sum(axis=(4, 5))  # (1, Ho, Wo, 1): taps that fall on the image
    total = _windows(x.astype(np.int64), filter_hw, stride, pads, 0).sum(axis=(4, 5))
    rounded = np.where(total > 0, (total + count // 2) // count, -((-total + count // 2) // count))
    return np.clip(rounded, lo, hi).astype(dtype)


def rescale_uint8(q: np.ndarray, scale: np.float32, bias: np.float32, zero_point: int) -> np.ndarray:
    """uint8 moved to another scale in float32, as TFLite's ConcatenationWithScaling:
    ``round(q * scale + bias) + zero_point`` (ties away from zero), clamped to [0, 255]."""
    moved = round_half_away(q.astype(np.float32) * np.float32(scale) + np.float32(bias))
    return np.clip(moved.astype(np.int64) + zero_point, 0, 255).astype(np.uint8)


def max_pool2d(x: np.ndarray, filter_hw: tuple[int, int], stride: tuple[int, int],
               padding: str, lo: int = -128, hi: int = 127) -> np.ndarray:
    """MAX_POOL_2D, any dtype (a max is exact): the largest tap inside the image, clamped.

    Padded taps hold the dtype's lowest value, so they never win. (N, H, W, C) -> (N, Ho, Wo, C).
    """
    pads = resolve_padding(padding, x.shape[1:3], filter_hw, stride, "int8")
    lowest = np.iinfo(x.dtype).min if x.dtype.kind in "iu" else -np.inf
    windows = _windows(x, filter_hw, stride, pads, lowest)  # (N, Ho, Wo, C, kh, kw)
    return np.clip(windows.max(axis=(4, 5)), lo, hi).astype(x.dtype)


def pad(x: np.ndarray, paddings: np.ndarray, value: int) -> np.ndarray:
    """PAD / PADV2: ``paddings`` (rank, 2) before/after per axis, filled with ``value`` (the zero point)."""
    return np.pad(x, [tuple(int(p) for p in row) for row in paddings], constant_values=value)


def hard_swish(x: np.ndarray, params) -> np.ndarray:
    """HARD_SWISH, int8: TFLite's 16-bit fixed-point recipe (see graph.HardSwishParams).

    ``x * relu6(x + 3) / 6`` as: the input on a "high-res" scale (x << 7), a "relu-ish" gate
    in [0, 1] as a Q15 number (input rescaled so that 3.0 is 2^15, saturated, mapped from
    [-1, 1] to [0, 1]), and their product by a truncating doubling high multiply.
    """
    value = (x.astype(np.int64) - params.input_zero_point) << 7  # int16: |.| <= 255 * 128
    on_output_scale = _srdhm16(value, params.output_multiplier)
    reluish = value
    if params.reluish_shift > 0:
        reluish = _saturating_left_shift16(reluish, params.reluish_shift - 1)
    reluish = _srdhm16(reluish, params.reluish_multiplier)
    if params.reluish_shift > 0:
        reluish = _saturating_left_shift16(reluish, 1)
    if params.reluish_shift < 0:
        reluish = rounding_divide_by_pot(reluish, -params.reluish_shift)
    reluish = (reluish + 2**15) >> 1  # [-1, 1] in Q15 -> [0, 1]
    product = reluish * on_output_scale  # SaturatingDoublingHighMul: truncates toward zero
    product = np.where(product >= 0, product >> 15, -((-product) >> 15))
    result = rounding_divide_by_pot(product, -params.output_shift) + params.output_zero_point
    return np.clip(result, -128, 127).astype(np.int8)


def _srdhm16(a: np.ndarray, b: int) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul on int16: ``round(a * b / 2^15)``, ties toward +inf
    (the nudge then C's truncation, as gemmlowp's: -2.5 -> -2, 2.5 -> 3)."""
    product = np.asarray(a, np.int64) * b
    nudged = product + np.where(product >= 0, 2**14, 1 - 2**14)
    high = np.where(nudged >= 0, nudged >> 15, -((-nudged) >> 15))
    return np.where((np.asarray(a) == -(2**15)) & (b == -(2**15)), 2**15 - 1, high)


def _saturating_left_shift16(x: np.ndarray, amount: int) -> np.ndarray:
    return np.clip(np.asarray(x, np.int64) << amount, -(2**15), 2**15 - 1)


def lookup(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """An int8 -> int8 function by table (LOGISTIC): ``table[q + 128]``, table (256,) int8."""
    return table[x.astype(np.int64) + 128]


def softmax(x: np.ndarray, exp_table: np.ndarray, output_scale: float, output_zero_point: int,
            dtype: type = np.int8) -> np.ndarray:
    """SOFTMAX, int8 or uint8, over the last axis, as TFLite's builtin kernel on x86: a float32 table.

    ``exp_table[d]`` = expf(-input_scale * beta * d) for d = max - q in [0, 255]; the sum
    runs in float32 left to right (the order matters for the last bit), then each
    probability is ``round(e * 1 / (sum * output_scale))`` + zero point.
    x (..., K) int8 -> (..., K) ``dtype``.
    """
    q = x.astype(np.int64)
    e = exp_table[q.max(axis=-1, keepdims=True) - q]  # (..., K) float32
    total = np.cumsum(e, axis=-1, dtype=np.float32)[..., -1:]  # sequential float32 sum
    inverse = np.float32(1.0) / (total * np.float32(output_scale))
    scaled = e * inverse  # float32
    rounded = round_half_away(scaled)  # std::round
    info = np.iinfo(dtype)
    return np.clip(rounded.astype(np.int64) + output_zero_point, info.min, info.max).astype(dtype)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    """QUANTIZE, float32 -> int8, as TFLite's optimized kernel: ``rint(x * (1 / scale)) + zp``.

    Measured against TFLite 2.21 on exact .5 ratios: it multiplies by the float32 reciprocal
    (not a division) and rounds ties to even (the vector convert), then clamps.
    """
    ratio = np.asarray(x, np.float32) * (np.float32(1.0) / np.float32(scale))
    info = np.iinfo(dtype)
    return np.clip(np.rint(ratio).astype(np.int64) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """DEQUANTIZE, int8 or uint8 (any shape) -> float32, as TFLite's optimized kernel: eight
    values at a time ``float32(q) * scale + float32(-zero_point * scale)`` (two float32
    roundings; the zero point times the scale in float64), the last size % 8 values
    ``float32(scale * (q - zero_point))`` in float64. (``scale * (q - zero_point)`` in float32
    is as close to the real value, and a rounding away from TFLite's in half the values.)"""
    q = np.asarray(q)
    flat = q.reshape(-1)
    stepped = flat.size - flat.size % 8
    out = np.empty(flat.size, np.float32)
    out[:stepped] = flat[:stepped].astype(np.float32) * np.float32(scale) + np.float32(-zero_point * scale)
    out[stepped:] = (scale * (flat[stepped:].astype(np.float64) - zero_point)).astype(np.float32)
    return out.reshape(q.shape)
