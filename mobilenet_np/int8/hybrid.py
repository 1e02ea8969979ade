"""Dynamic-range ("hybrid") kernels: int8 weights on float32 activations, as TFLite's.

A file converted with ``Optimize.DEFAULT`` and no representative dataset keeps float32
activations and stores the weights of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED as
int8, symmetric, one scale per output channel. At run time TFLite's hybrid kernels quantize
each op's float input **image by image** (the whole (H, W, C) image shares one scale) to
int8, sum the integer products exactly, and rescale the sums in float32:

    y[n, ..., c] = float32(acc) * (input_scale[n] * weight_scale[c]) + bias[c]

then the fused activation, in float32. The integer sums are exact here (float64 BLAS, as in
``ops.py``) and every float32 step is one correctly rounded operation in the same order as
TFLite's, so the results are **bit-exact**, not merely close (tests/test_tflite_hybrid.py).

Which input quantization and which float order (measured on TFLite 2.21's x86-64 wheel,
``BUILTIN_WITHOUT_DEFAULT_DELEGATES``, replaying every hybrid op of converted V2 and V3
files on TFLite's own inputs; 0 of 491,808 outputs differ):

* CONV_2D with per-channel scales (``EvalHybridPerChannel``) and DEPTHWISE_CONV_2D:
  asymmetric input (``AsymmetricQuantizeFloats``: a zero point per image). CONV_2D scales
  as ``acc * (input_scale * weight_scale)`` (the optimized kernel's Eigen expression);
  DEPTHWISE_CONV_2D as ``(acc * weight_scale) * input_scale``.
* CONV_2D with one weight scale (``EvalHybrid``): symmetric input (``SymmetricQuantizeFloats``,
  [-127, 127], no zero point), then ``acc * (input_scale * weight_scale)``.
* FULLY_CONNECTED: asymmetric or symmetric as its ``asymmetric_quantize_inputs`` option says,
  then ``acc * (input_scale * weight_scale)``.

TFLite's reference kernels (``BUILTIN_REF``) take the other order for the two convolutions
(``(acc * weight_scale) * input_scale`` for CONV_2D, the product of scales first for the
depthwise one): one float32 rounding apart, which is why this file names the builtin kernels
it matches. The loop twins are ``reference.hybrid_*``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..shapes import resolve_padding
from .fixedpoint import round_half_away
from .ops import conv2d_accumulators

F32 = np.float32


def quantize_asymmetric(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TFLite's AsymmetricQuantizeFloats, per image: (N, ...) float32 -> int8, scales, zero points.

    The range [min(0, x), max(0, x)] spans the 256 int8 steps; the scale is computed in
    float32, the zero point (in double) from the end that loses less, clamped to [-128, 127];
    ``q = round(x * (1 / scale)) + zero_point``, the product in float32, ties away from zero
    (measured: adding the zero point before rounding is 16 values off on V3). An all-zero image gets
    scale 1 and zero point 0. Returns q (N, ...) int8, scale (N,) float32, zero point (N,) int64.
    """
    flat = x.reshape(len(x), -1)  # (N, H*W*C): one scale per image
    low = np.minimum(flat.min(axis=1), F32(0)).astype(F32)
    high = np.maximum(flat.max(axis=1), F32(0)).astype(F32)
    same = low == high
    scale = np.where(same, F32(1), (high - low) / F32(255)).astype(F32)  # float32, as TFLite 2.21
    low64, high64, scale64 = low.astype(np.float64), high.astype(np.float64), scale.astype(np.float64)
    from_min, from_max = -128 - low64 / scale64, 127 - high64 / scale64
    closer_to_min = 128 + np.abs(low64 / scale64) < 127 + np.abs(high64 / scale64)
    zero = np.where(closer_to_min, from_min, from_max)
    zero_point = np.clip(round_half_away(zero), -128, 127).astype(np.int64)
    zero_point[same] = 0
    inverse = (1.0 / scale64).astype(F32)  # 1.0 / scale in double, stored as float
    shape = (-1,) + (1,) * (x.ndim - 1)
    q = round_half_away(x * inverse.reshape(shape)) + zero_point.reshape(shape)  # rounded, then offset
    return np.clip(q, -128, 127).astype(np.int8), scale, zero_point


def quantize_symmetric(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's SymmetricQuantizeFloats, per image: (N, ...) float32 -> int8 in [-127, 127], scales.

    ``scale = max|x| / 127`` and ``q = round(x * (127 / max|x|))``, both in float32, ties away
    from zero; an all-zero image gets scale 1. Returns q (N, ...) int8 and scale (N,) float32.
    """
    flat = x.reshape(len(x), -1)  # (N, H*W*C)
    reach = np.maximum(np.abs(flat.min(axis=1)), np.abs(flat.max(axis=1))).astype(F32)
    zero = reach == 0
    safe = np.where(zero, F32(1), reach)
    scale = np.where(zero, F32(1), safe / F32(127)).astype(F32)
    inverse = (F32(127) / safe).astype(F32)
    q = round_half_away(x * inverse.reshape((-1,) + (1,) * (x.ndim - 1)))
    return np.clip(q, -127, 127).astype(np.int8), scale


def _quantize(x: np.ndarray, asymmetric: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q, scale, zero point) per image; symmetric quantization has zero point 0."""
    if asymmetric:
        return quantize_asymmetric(x)
    q, scale = quantize_symmetric(x)
    return q, scale, np.zeros(len(x), np.int64)


def _rescale(acc: np.ndarray, input_scale: np.ndarray, weight_scale: np.ndarray,
             bias: np.ndarray | None, scales_first: bool = True) -> np.ndarray:
    """float32(acc) times the two scales, in TFLite's order, plus the float bias. acc (N, ..., C)."""
    per_image = input_scale.reshape((-1,) + (1,) * (acc.ndim - 1))  # (N, 1, ..., 1)
    value = acc.astype(F32)  # exact below 2^24, else rounded to nearest as C's int -> float
    if scales_first:
        y = value * (per_image * weight_scale)  # acc * (input_scale * weight_scale)
    else:
        y = (value * weight_scale) * per_image  # (acc * weight_scale) * input_scale
    return y if bias is None else y + bias


def hybrid_conv2d(x: np.ndarray, kernel: np.ndarray, weight_scale: np.ndarray, bias: np.ndarray | None,
                  stride: tuple[int, int] = (1, 1), padding: str = "SAME") -> np.ndarray:
    """CONV_2D, float32 input, int8 kernel (Cout, kh, kw, Cin), weight_scale (Cout,) or (1,).

    Per-channel scales: asymmetric input quantization; one scale: symmetric (TFLite's two
    hybrid paths). Returns (N, Ho, Wo, Cout) float32, before the fused activation.
    """
    asymmetric = len(np.unique(weight_scale)) > 1
    q, scale, zero_point = _quantize(x, asymmetric)
    acc = np.concatenate([conv2d_accumulators(q[n:n + 1], int(zero_point[n]), kernel, stride, padding)
                          for n in range(len(x))])  # (N, Ho, Wo, Cout), exact
    return _rescale(acc, scale, weight_scale, bias)


def depthwise_accumulators(q: np.ndarray, zero_point: np.ndarray, kernel: np.ndarray,
                           stride: tuple[int, int], padding: str, depth_multiplier: int = 1) -> np.ndarray:
    """Exact sums ``sum (q - zp[n]) * w`` of a depthwise convolution, one zero point per image.

    q (N, H, W, C) int8, kernel (1, kh, kw, C * M) -> (N, Ho, Wo, C * M) int64.
    """
    _, kh, kw, _ = kernel.shape
    pads = resolve_padding(padding, q.shape[1:3], (kh, kw), stride, "hybrid_depthwise_conv2d")
    centred = q.astype(np.int64) - zero_point.reshape(-1, 1, 1, 1)  # (N, H, W, C)
    if depth_multiplier > 1:
        centred = centred.repeat(depth_multiplier, axis=3)  # (N, H, W, C * M): channel c*M + m
    centred = np.pad(centred, ((0, 0), *pads, (0, 0)))  # padded taps are real zeros
    windows = sliding_window_view(centred, (kh, kw), axis=(1, 2))[:, ::stride[0], ::stride[1]]
    return np.einsum("nhwcij,ijc->nhwc", windows, kernel[0].astype(np.int64))  # (N, Ho, Wo, C*M)


def hybrid_depthwise_conv2d(x: np.ndarray, kernel: np.ndarray, weight_scale: np.ndarray,
                            bias: np.ndarray | None, stride: tuple[int, int] = (1, 1),
                            padding: str = "SAME", depth_multiplier: int = 1) -> np.ndarray:
    """DEPTHWISE_CONV_2D, float32 input, int8 kernel (1, kh, kw, C * M), per-channel scales.

    Asymmetric input quantization per image. Returns (N, Ho, Wo, C * M) float32, before
    the fused activation.
    """
    q, scale, zero_point = quantize_asymmetric(x)
    acc = depthwise_accumulators(q, zero_point, kernel, stride, padding, depth_multiplier)
    return _rescale(acc, scale, weight_scale, bias, scales_first=False)


def hybrid_fully_connected(x: np.ndarray, weights: np.ndarray, weight_scale: np.ndarray,
                           bias: np.ndarray | None, asymmetric: bool) -> np.ndarray:
    """FULLY_CONNECTED, float32 input (N, Cin), int8 weights (Cout, Cin) -> (N, Cout) float32,
    before the fused activation; each row of x is quantized on its own."""
    q, scale, zero_point = _quantize(x, asymmetric)
    centred = q.astype(np.float64) - zero_point[:, None]  # (N, Cin), in [-255, 255]
    acc = (centred @ weights.T.astype(np.float64)).astype(np.int64)  # (N, Cout): exact in float64
    return _rescale(acc, scale, weight_scale, bias)
