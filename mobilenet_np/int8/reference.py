"""Plain-loop twins of ``ops.py``'s int8 kernels, in Python integers: slow, and readable.

Every fixed-point step is written out on Python ints (which never overflow, so each C
integer operation is spelled out: ``>>`` is an arithmetic shift, C's ``/`` truncates toward
zero), and every convolution loops over output pixels and taps skipping the padding.
Same arguments and results as the ``ops`` kernels; tests check the two agree exactly.

The ``*_loop`` cores (and the scalar helpers they call) take only arrays, ints and tuples of
ints, so that Numba compiles them unchanged (``int8/compiled.py``, ``backend="numba"``): run
here they add Python ints, compiled int64 (every value fits: |accumulator| < 2^31, times a
multiplier < 2^31). The wrappers unpack a ``Requantize`` into ``output_stage`` arrays.
"""

from __future__ import annotations

import math

import numpy as np

from ..shapes import conv_output_hw, resolve_padding
from .fixedpoint import Requantize, round_half_away

DOUBLE, DOUBLE_UP, SINGLE = 0, 1, 2  # fixedpoint's rounding recipes, as numbers the cores take
ROUNDING_CODES = {"double": DOUBLE, "double_up": DOUBLE_UP, "single": SINGLE}


def _c_div(a: int, b: int) -> int:
    """C's integer division: the quotient truncated toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _c_div_pot(a: int, exponent: int) -> int:
    """C's division by 2^exponent (truncated toward zero), by shifts: ``_c_div(a, 2**exponent)``."""
    return a >> exponent if a >= 0 else -((-a) >> exponent)


def srdhm(a: int, b: int, bits: int = 32) -> int:
    """SaturatingRoundingDoublingHighMul on ``bits``-bit ints: round(a * b / 2^(bits-1)).

    The nudge (+2^(bits-2), or 1 - 2^(bits-2) below zero) then C's truncating division:
    every tie rounds up, toward +inf. Only low * low (low = -2^(bits-1)) gives 2^(bits-1),
    one past the largest int: it saturates (a clamp rather than a branch, so that the
    compiled loops around it stay vectorised).
    """
    product = a * b
    nudge = 1 << (bits - 2) if product >= 0 else 1 - (1 << (bits - 2))
    return min(_c_div_pot(product + nudge, bits - 1), (1 << (bits - 1)) - 1)


def rdbpot(x: int, exponent: int) -> int:
    """RoundingDivideByPOT: x / 2^exponent, to nearest, ties away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def mbqm(x: int, multiplier: int, shift: int, rounding: int) -> int:
    """MultiplyByQuantizedMultiplier, one int at a time: rounding DOUBLE, DOUBLE_UP or SINGLE."""
    if rounding == SINGLE:
        total = 31 - shift
        return (x * multiplier + (1 << (total - 1))) >> total
    left, right = max(shift, 0), max(-shift, 0)
    high = srdhm(x << left, multiplier)  # x * 2^left; SQRDMULH rounds exactly as gemmlowp's
    if rounding == DOUBLE:
        return rdbpot(high, right)
    return (high + ((1 << right) >> 1)) >> right  # DOUBLE_UP: SRSHL by -right, ties up


def requantize(acc: int, multiplier: int, shift: int, stage: tuple[int, int, int, int]) -> int:
    """One accumulator to the output type; stage = (rounding, zero point, lo, hi)."""
    rounding, zero_point, lo, hi = stage
    return min(max(mbqm(acc, multiplier, shift, rounding) + zero_point, lo), hi)


def requantize_in_float64(acc: float, high: float, low: float, left: float, right: float,
                          stage: tuple[int, int, int, int]) -> float:
    """``requantize``, the same integer, computed in float64 (``float64_stage`` gives the
    constants): the compiled loops vectorise float64, not int64 (AVX2 has no 64-bit multiply).

    srdhm(a, M) is floor(a M / 2^31 + 1/2) (every tie up, as its nudge and truncation give).
    a M needs 62 bits, float64 holds 53, so M is cut in two: a (M >> 16) / 2^15 = ``a * high``
    and a (M & 0xFFFF) / 2^31 = ``a * low``, each exact while |a| = |acc << left| < 2^31 (as
    TFLite's int32 requires); the floor of their sum is the floor of the first's whole part
    plus that of its fraction plus the second plus 1/2, a sum of at most 48 bits: exact. Then
    h / 2^right (``right`` = 2^-right: exact) rounded ties away from zero (DOUBLE) or up
    (DOUBLE_UP; SINGLE has no second step: right = 1, h whole). M >= 0 always (quantize_multiplier),
    so srdhm's one saturating case, a = M = -2^31, never arises.
    """
    rounding, zero_point, lo, hi = stage
    a = acc * left  # acc << left
    scaled = a * high
    whole = np.floor(scaled)
    h = whole + np.floor((scaled - whole) + (a * low + 0.5))  # srdhm(a, M), or SINGLE's one rounding
    q = h * right
    if rounding == DOUBLE:
        rounded = math.copysign(np.floor(abs(q) + 0.5), q)  # ties away from zero
    else:
        rounded = np.floor(q + 0.5)  # ties up
    return min(max(rounded + zero_point, lo), hi)


def float64_stage(out: Requantize, channels: int, bias=None):
    """A layer's bias and ``Requantize`` as ``requantize_in_float64`` takes them: (C,) float64
    bias (exact: int32 values; zeros for none), ``high``, ``low``, ``left`` (2^left), ``right``
    (2^-right), and the stage tuple (SINGLE: one rounding of acc M / 2^(31 - shift), so high
    and low carry the whole scale and left = right = 1). All float64, converted once here:
    the loops then convert nothing but the sums."""
    multiplier, shift, stage = output_stage(out, channels)
    bias = np.zeros(channels) if bias is None else np.asarray(bias, np.float64)
    high, low = (multiplier >> 16).astype(np.float64), (multiplier & 0xFFFF).astype(np.float64)
    if stage[0] == SINGLE:
        total = 31 - shift  # (x M + 2^(total - 1)) >> total
        ones = np.ones(channels)
        return bias, np.ldexp(high, 16 - total), np.ldexp(low, -total), ones, ones, stage
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    return bias, np.ldexp(high, -15), np.ldexp(low, -31), np.ldexp(1.0, left), np.ldexp(1.0, -right), stage


def output_stage(out: Requantize, channels: int):
    """A ``Requantize`` as the cores take it: (C,) multipliers, (C,) shifts, and the stage tuple."""
    def per_channel(values) -> np.ndarray:
        return np.ascontiguousarray(np.broadcast_to(np.asarray(values, np.int64).ravel(), (channels,)))
    return per_channel(out.multiplier), per_channel(out.shift), _stage(out)


def _stage(out: Requantize) -> tuple[int, int, int, int]:
    if out.rounding not in ROUNDING_CODES:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDING_CODES)}, got {out.rounding!r}")
    return ROUNDING_CODES[out.rounding], int(out.zero_point), int(out.lo), int(out.hi)


def _requantize(acc: int, out: Requantize, channel: int) -> int:
    multiplier = int(np.ravel(out.multiplier)[channel % np.size(out.multiplier)])
    shift = int(np.ravel(out.shift)[channel % np.size(out.shift)])
    return requantize(acc, multiplier, shift, _stage(out))


def _geometry(in_hw: tuple[int, int], kernel_hw: tuple[int, int], stride: tuple[int, int],
              padding: str) -> tuple[int, int, int, int]:
    """(top, left, out_h, out_w) of TFLite's SAME or VALID: the float kernels' own rules."""
    pads = resolve_padding(padding, in_hw, kernel_hw, stride, "int8")
    out_h, out_w = conv_output_hw(in_hw, kernel_hw, stride, pads, "int8")
    return pads[0][0], pads[1][0], out_h, out_w


def conv2d(x, x_zero_point, kernel, bias, out, stride=(1, 1), padding="SAME"):
    """CONV_2D by loops: out[n, oy, ox, o] = requant(bias[o] + sum (x - zp) * kernel[o, ky, kx, i]).

    ``kernel`` comes centred (uint8 weights minus their zero point), as in ``ops``.
    """
    n_images, height, width, cin = x.shape
    cout, kh, kw, _ = kernel.shape
    top, left, out_h, out_w = _geometry((height, width), (kh, kw), stride, padding)
    y = np.zeros((n_images, out_h, out_w, cout), out.dtype)
    for n in range(n_images):
        for oy in range(out_h):
            for ox in range(out_w):
                for o in range(cout):
                    acc = int(bias[o])
                    for ky in range(kh):
                        for kx in range(kw):
                            iy, ix = oy * stride[0] + ky - top, ox * stride[1] + kx - left
                            if not (0 <= iy < height and 0 <= ix < width):
                                continue  # padding: value zp, adds (zp - zp) * w = 0
                            for i in range(cin):
                                acc += (int(x[n, iy, ix, i]) - x_zero_point) * int(kernel[o, ky, kx, i])
                    y[n, oy, ox, o] = _requantize(acc, out, o)
    return y


def depthwise_conv2d(x, x_zero_point, kernel, bias, out, stride=(1, 1), padding="SAME", depth_multiplier=1):
    """DEPTHWISE_CONV_2D by loops: output channel c * M + m reads input channel c only."""
    stage = float64_stage(out, kernel.shape[3], bias)
    return depthwise_staged(x, x_zero_point, kernel, stage, out.dtype, stride, padding, depth_multiplier)


def depthwise_staged(x, x_zero_point, kernel, stage, dtype, stride, padding, depth_multiplier):
    """``depthwise_conv2d`` with its bias and ``Requantize`` already as ``float64_stage`` gives
    them: a caller running the layer again (``compiled``) makes them once."""
    n_images, height, width, _ = x.shape
    _, kh, kw, channels_out = kernel.shape
    top, left, out_h, out_w = _geometry((height, width), (kh, kw), stride, padding)
    if depth_multiplier > 1:
        x = np.repeat(x, depth_multiplier, axis=3)  # (N, H, W, C * M): channel c*M + m
    y = np.zeros((n_images, out_h, out_w, channels_out), dtype)
    depthwise_loop(np.ascontiguousarray(x), x_zero_point, np.ascontiguousarray(kernel[0]), *stage,
                   tuple(stride), (top, left), y)
    return y


def depthwise_loop(x, x_zero_point, kernel, bias, high, low, left, right, stage, stride, top_left, out):
    """out[n, oy, ox, c] = requantize(bias[c] + sum over taps of (x[n, iy, ix, c] - zp) * kernel[ky, kx, c]).

    x (N, H, W, C), kernel (kh, kw, C), out (N, Ho, Wo, C). One output row at a time: each
    tap adds its share to the row's int32 sums (|sum| <= kh * kw * 255 * 255 < 2^31), then
    the row is requantized (``requantize_in_float64``: ``requantize``'s integer). Taps on the
    padding are skipped: they add (zp - zp) * w = 0.
    """
    n_images, height, width, channels = x.shape
    kh, kw = kernel.shape[:2]
    sums = np.zeros((out.shape[2], channels), np.int32)  # (Wo, C): one output row
    for n in range(n_images):
        for oy in range(out.shape[1]):
            sums[:] = 0
            for ky in range(kh):
                iy = oy * stride[0] + ky - top_left[0]
                if not 0 <= iy < height:
                    continue
                for kx in range(kw):
                    for ox in range(out.shape[2]):
                        ix = ox * stride[1] + kx - top_left[1]
                        if 0 <= ix < width:
                            for c in range(channels):
                                sums[ox, c] += (int(x[n, iy, ix, c]) - x_zero_point) * int(kernel[ky, kx, c])
            for ox in range(out.shape[2]):
                for c in range(channels):
                    out[n, oy, ox, c] = requantize_in_float64(float(sums[ox, c]) + float(bias[c]), high[c],
                                                              low[c], left[c], right[c], stage)


def fully_connected(x, x_zero_point, weights, bias, out):
    """FULLY_CONNECTED by loops: y[n, o] = requant(bias[o] + sum_i (x[n, i] - zp) * w[o, i])."""
    sums = np.zeros((x.shape[0], weights.shape[0]), np.int64)
    for n in range(x.shape[0]):
        for o in range(weights.shape[0]):
            for i in range(weights.shape[1]):
                sums[n, o] += (int(x[n, i]) - x_zero_point) * int(weights[o, i])
    y = np.zeros(sums.shape, out.dtype)
    bias = np.zeros(weights.shape[0], np.int64) if bias is None else bias
    requantize_loop(sums, *float64_stage(out, weights.shape[0], bias), y)
    return y


def requantize_loop(sums, bias, high, low, left, right, stage, out):
    """The epilogue of CONV_2D and FULLY_CONNECTED: out[p, c] = requantize(sums[p, c] + bias[c]),
    by ``requantize_in_float64`` (``float64_stage``'s constants).

    sums (P, C): int32-valued integers, or floats holding them exactly (BLAS's products, see
    ``compiled``); bias (C,) float64; each exact in float64.
    """
    for p in range(sums.shape[0]):
        for c in range(sums.shape[1]):
            out[p, c] = requantize_in_float64(float(sums[p, c]) + float(bias[c]), high[c], low[c], left[c],
                                              right[c], stage)


def centre_loop(x, zero_point, out):
    """out (P, K) float32 = x (P, K) - zero_point: the exact matmul's input (``compiled``).

    Every difference of two 8-bit integers, in [-255, 255], is exact in float32.
    """
    for p in range(x.shape[0]):
        for k in range(x.shape[1]):
            out[p, k] = np.float32(x[p, k]) - np.float32(zero_point)


def add(a, b, params):
    """ADD (SUB) by elements: each input << 20, scaled (double rounding), summed (subtracted), requantized."""
    a, b = np.broadcast_arrays(a, b)
    y = np.zeros(a.shape, params.out.dtype)
    inputs = (params.left_shift, params.a_zero_point, params.a_multiplier, params.a_shift,
              params.b_zero_point, params.b_multiplier, params.b_shift, params.b_sign)
    multiplier, shift, stage = output_stage(params.out, 1)
    add_loop(np.ascontiguousarray(a).ravel(), np.ascontiguousarray(b).ravel(), inputs, int(multiplier[0]),
             int(shift[0]), stage, y.reshape(-1))
    return y


def add_loop(a, b, inputs, multiplier, shift, stage, out):
    """out[i] = requantize(scaled a[i] + sign * scaled b[i]), a, b, out flat (size,)."""
    left_shift, a_zero_point, a_multiplier, a_shift, b_zero_point, b_multiplier, b_shift, b_sign = inputs
    for i in range(out.size):
        scaled_a = mbqm((int(a[i]) - a_zero_point) << left_shift, a_multiplier, a_shift, DOUBLE)
        scaled_b = mbqm((int(b[i]) - b_zero_point) << left_shift, b_multiplier, b_shift, DOUBLE)
        out[i] = requantize(scaled_a + b_sign * scaled_b, multiplier, shift, stage)


def mul(a, a_zero_point, b, b_zero_point, out):
    """MUL by elements: requant((a - za) * (b - zb))."""
    a, b = np.broadcast_arrays(a, b)
    y = np.zeros(a.shape, out.dtype)
    multiplier, shift, stage = output_stage(out, 1)
    mul_loop(np.ascontiguousarray(a).ravel(), a_zero_point, np.ascontiguousarray(b).ravel(), b_zero_point,
             int(multiplier[0]), int(shift[0]), stage, y.reshape(-1))
    return y


def mul_loop(a, a_zero_point, b, b_zero_point, multiplier, shift, stage, out):
    """out[i] = requantize((a[i] - za) * (b[i] - zb)), all flat (size,)."""
    for i in range(out.size):
        out[i] = requantize((int(a[i]) - a_zero_point) * (int(b[i]) - b_zero_point), multiplier, shift, stage)


def mean_hw(x, multiplier, shift, bias, dtype=np.int8):
    """MEAN over H, W with keep_dims, by loops: raw sum, rescale (16-channel blocks ties up), + bias."""
    y = np.zeros((x.shape[0], 1, 1, x.shape[3]), dtype)
    info = np.iinfo(dtype)  # int8 or uint8 clamps
    mean_hw_loop(np.ascontiguousarray(x), multiplier, shift, bias, info.min, info.max, y)
    return y


def mean_hw_loop(x, multiplier, shift, bias, low, high, out):
    """out[n, 0, 0, c] = clamp(rescaled sum over (i, j) of x[n, i, j, c] + bias): TFLite's vector
    code for whole 16-channel blocks (DOUBLE_UP), its scalar code for the rest (DOUBLE)."""
    n_images, height, width, channels = x.shape
    vector_channels = channels // 16 * 16
    totals = np.zeros(channels, np.int64)  # |sum| < H * W * 2^7
    for n in range(n_images):
        totals[:] = 0
        for i in range(height):
            for j in range(width):
                for c in range(channels):  # pixel by pixel: memory order
                    totals[c] += int(x[n, i, j, c])
        for c in range(channels):
            rounding = DOUBLE_UP if c < vector_channels else DOUBLE
            out[n, 0, 0, c] = min(max(mbqm(int(totals[c]), multiplier, shift, rounding) + bias, low), high)


def mean(x, x_zero_point, axes, out, keep_dims):
    """MEAN over ``axes`` by loops: sum (x - zp) per output element, requantized."""
    kept = [a for a in range(x.ndim) if a not in axes]
    rows = np.ascontiguousarray(np.transpose(x, kept + list(axes)))  # kept axes first
    rows = rows.reshape(int(np.prod([x.shape[a] for a in kept])), -1)  # (kept elements, reduced)
    y = np.zeros(len(rows), out.dtype)
    multiplier, shift, stage = output_stage(out, 1)
    mean_loop(rows, x_zero_point, int(multiplier[0]), int(shift[0]), stage, y)
    y = y.reshape([x.shape[a] for a in kept])
    return y.reshape([1 if a in axes else x.shape[a] for a in range(x.ndim)]) if keep_dims else y


def mean_loop(rows, x_zero_point, multiplier, shift, stage, out):
    """out[k] = requantize(sum over r of (rows[k, r] - zp)), rows (K, R), out (K,)."""
    for k in range(rows.shape[0]):
        total = 0
        for r in range(rows.shape[1]):
            total += int(rows[k, r]) - x_zero_point
        out[k] = requantize(total, multiplier, shift, stage)


def average_pool2d(x, filter_hw, stride, padding, lo=-128, hi=127, dtype=np.int8):
    """AVERAGE_POOL_2D by loops: sum over the taps inside the image / their count, rounded."""
    n_images, height, width, channels = x.shape
    top, left, out_h, out_w = _geometry((height, width), filter_hw, stride, padding)
    y = np.zeros((n_images, out_h, out_w, channels), dtype)
    average_pool_loop(np.ascontiguousarray(x), tuple(filter_hw), tuple(stride), (top, left), lo, hi, y)
    return y


def average_pool_loop(x, filter_hw, stride, top_left, lo, hi, out):
    """out[n, oy, ox, c] = the taps inside the image summed, / their count (ties away from 0), clamped."""
    height, width = x.shape[1:3]
    for n in range(out.shape[0]):
        for oy in range(out.shape[1]):
            for ox in range(out.shape[2]):
                top, left = oy * stride[0] - top_left[0], ox * stride[1] - top_left[1]
                for c in range(out.shape[3]):
                    total, count = 0, 0
                    for iy in range(max(top, 0), min(top + filter_hw[0], height)):
                        for ix in range(max(left, 0), min(left + filter_hw[1], width)):
                            total += int(x[n, iy, ix, c])
                            count += 1
                    half = count // 2
                    rounded = _c_div(total + half, count) if total > 0 else _c_div(total - half, count)
                    out[n, oy, ox, c] = min(max(rounded, lo), hi)


def max_pool2d(x, filter_hw, stride, padding, lo=-128, hi=127):
    """MAX_POOL_2D by loops: the largest tap inside the image, clamped."""
    n_images, height, width, channels = x.shape
    top, left, out_h, out_w = _geometry((height, width), filter_hw, stride, padding)
    y = np.zeros((n_images, out_h, out_w, channels), x.dtype)
    for n, oy, ox, c in np.ndindex(y.shape):
        y[n, oy, ox, c] = min(max(max(
            x[n, iy, ix, c]
            for iy in range(oy * stride[0] - top, oy * stride[0] - top + filter_hw[0])
            for ix in range(ox * stride[1] - left, ox * stride[1] - left + filter_hw[1])
            if 0 <= iy < height and 0 <= ix < width), lo), hi)
    return y


def pad(x, paddings, value):
    """PAD by copying: a new array of ``value`` with x written at the (before) offsets."""
    befores = [int(p[0]) for p in paddings]
    y = np.full([size + int(p[0]) + int(p[1]) for size, p in zip(x.shape, paddings, strict=True)],
                value, x.dtype)
    for index in np.ndindex(x.shape):
        y[tuple(i + b for i, b in zip(index, befores, strict=True))] = x[index]
    return y


def hard_swish(x, params):
    """HARD_SWISH, one element at a time, every int16 fixed-point step spelled out."""
    y = np.zeros(x.shape, np.int8)
    hard_swish_loop(np.ascontiguousarray(x).ravel(), (
        params.input_zero_point, params.output_zero_point, params.output_multiplier, params.output_shift,
        params.reluish_multiplier, params.reluish_shift), y.reshape(-1))
    return y


def hard_swish_loop(x, params, out):
    """out[i] = HARD_SWISH(x[i]) in TFLite's int16 recipe, x and out flat (size,)."""
    input_zero_point, output_zero_point, output_multiplier, output_shift = params[:4]
    reluish_multiplier, reluish_shift = params[4:]
    for i in range(out.size):
        value = (int(x[i]) - input_zero_point) * 128  # "hi-res" input, fits int16
        on_output_scale = srdhm(value, output_multiplier, 16)
        reluish = value
        if reluish_shift > 0:
            reluish = min(max(reluish << (reluish_shift - 1), -(2**15)), 2**15 - 1)  # times 2^(shift - 1)
        reluish = srdhm(reluish, reluish_multiplier, 16)
        if reluish_shift > 0:
            reluish = min(max(reluish * 2, -(2**15)), 2**15 - 1)
        if reluish_shift < 0:
            reluish = rdbpot(reluish, -reluish_shift)
        reluish = (reluish + 2**15) >> 1  # gate in [0, 1], Q15
        product = _c_div_pot(reluish * on_output_scale, 15)  # SaturatingDoublingHighMul
        result = rdbpot(product, -output_shift) + output_zero_point
        out[i] = min(max(result, -128), 127)


def rescale_uint8(q, scale, bias, zero_point):
    """uint8 to another scale by elements: round(q * scale + bias) + zero point, in float32."""
    y = np.zeros(q.shape, np.uint8)
    for index in np.ndindex(q.shape):
        moved = int(round_half_away(np.float32(q[index]) * np.float32(scale) + np.float32(bias)))
        y[index] = min(max(moved + zero_point, 0), 255)
    return y


def lookup(x, table):
    """Table lookup, one element at a time: table[q + 128]."""
    y = np.zeros(x.shape, np.int8)
    lookup_loop(np.ascontiguousarray(x).ravel(), table, y.reshape(-1))
    return y


def lookup_loop(x, table, out):
    """out[i] = table[x[i] + 128], x and out flat (size,)."""
    for i in range(out.size):
        out[i] = table[int(x[i]) + 128]


def lookup_byte_loop(x, table, out):
    """out[i] = table[x[i]]: x the inputs' bytes (uint8; int8's -128..-1 are bytes 128..255),
    so that no index is ever negative (checking for one took 60% of the loop), all flat (size,)."""
    for i in range(out.size):
        out[i] = table[x[i]]


def lookup_pair_loop(a, b, table, out):
    """out[i] = table[a[i], b[i]]: a pair op's (256, 256) table, by the inputs' bytes, all flat."""
    for i in range(out.size):
        out[i] = table[a[i], b[i]]


def softmax(x, exp_table, output_scale, output_zero_point, dtype=np.int8):
    """SOFTMAX by loops over the last axis, in float32 scalars, summing left to right."""
    info = np.iinfo(dtype)
    y = np.zeros(x.shape, dtype)
    softmax_loop(np.ascontiguousarray(x).reshape(-1, x.shape[-1]), exp_table, np.float32(output_scale),
                 (output_zero_point, int(info.min), int(info.max)), y.reshape(-1, x.shape[-1]))
    return y


def softmax_loop(rows, exp_table, output_scale, stage, out):
    """out[r] = round(exp_table[max - q] / (sum * output_scale)) + zp per row; rows, out (R, K)."""
    zero_point, lo, hi = stage
    for r in range(rows.shape[0]):
        top = -1024
        for k in range(rows.shape[1]):
            top = max(top, int(rows[r, k]))
        total = np.float32(0.0)
        for k in range(rows.shape[1]):
            total = np.float32(total + exp_table[top - int(rows[r, k])])
        inverse = np.float32(np.float32(1.0) / np.float32(total * output_scale))
        for k in range(rows.shape[1]):
            scaled = float(np.float32(exp_table[top - int(rows[r, k])] * inverse))
            rounded = int(np.trunc(scaled)) + (1 if scaled - np.trunc(scaled) >= 0.5 else 0)
            out[r, k] = min(max(rounded + zero_point, lo), hi)


def quantize(x, scale, zero_point, dtype=np.int8):
    """QUANTIZE by elements: x times the float32 reciprocal of scale, ties to even, + zp, clamped."""
    info = np.iinfo(dtype)
    inverse = np.float32(np.float32(1.0) / np.float32(scale))
    y = np.zeros(np.shape(x), dtype)
    for index in np.ndindex(np.shape(x)):
        rounded = round(float(np.float32(np.float32(x[index]) * inverse)))  # Python rounds ties to even
        y[index] = min(max(rounded + zero_point, info.min), info.max)
    return y


def dequantize(q, scale, zero_point):
    """DEQUANTIZE by elements in memory order, as TFLite's optimized kernel: in whole steps of
    8 values float32(q) * scale + float32(-zp * scale), each operation rounded to float32
    (zp * scale in float64); the last size % 8 values float32(scale * (q - zp)) in float64."""
    flat = np.ravel(q)
    y = np.zeros(flat.shape, np.float32)
    stepped = len(flat) - len(flat) % 8
    for k, value in enumerate(flat):
        if k < stepped:
            y[k] = np.float32(int(value)) * np.float32(scale) + np.float32(-zero_point * scale)
        else:
            y[k] = np.float32(scale * (int(value) - zero_point))
    return y.reshape(np.shape(q))


# ---- dynamic-range ("hybrid") kernels: loop twins of hybrid.py --------------------------------


def hybrid_quantize(image, asymmetric):
    """One image's float32 values -> (int8 list, scale, zero point), TFLite's Asymmetric- or
    SymmetricQuantizeFloats value by value (float32 scale; ties away from zero)."""
    values = [np.float32(v) for v in np.ravel(image)]
    low, high = min(min(values), np.float32(0)), max(max(values), np.float32(0))
    if not asymmetric:
        reach = max(abs(min(values)), abs(max(values)))
        if reach == 0:
            return [0] * len(values), np.float32(1), 0
        inverse = np.float32(127) / reach
        return ([min(max(int(round_half_away(v * inverse)), -127), 127) for v in values],
                reach / np.float32(127), 0)
    if low == high:
        return [0] * len(values), np.float32(1), 0
    scale = (high - low) / np.float32(255)
    from_min, from_max = -128 - float(low) / float(scale), 127 - float(high) / float(scale)
    closer_to_min = 128 + abs(float(low) / float(scale)) < 127 + abs(float(high) / float(scale))
    zero = from_min if closer_to_min else from_max
    zero_point = -128 if zero <= -128 else 127 if zero >= 127 else int(round_half_away(zero))
    inverse = np.float32(1.0 / float(scale))
    return ([min(max(int(round_half_away(v * inverse)) + zero_point, -128), 127)
             for v in values], scale, zero_point)


def _hybrid_output(acc, input_scale, weight_scale, bias, channel, scales_first=True):
    """One output: float32(acc) times the two scales in TFLite's order, plus the bias."""
    w_scale = np.float32(weight_scale[channel % len(weight_scale)])
    if scales_first:
        y = np.float32(acc) * (input_scale * w_scale)
    else:
        y = (np.float32(acc) * w_scale) * input_scale
    return y if bias is None else y + np.float32(bias[channel])


def hybrid_conv2d(x, kernel, weight_scale, bias, stride=(1, 1), padding="SAME"):
    """Hybrid CONV_2D by loops: each image quantized, integer sums skipping the padding, rescaled."""
    n_images, height, width, cin = x.shape
    cout, kh, kw, _ = kernel.shape
    top, left, out_h, out_w = _geometry((height, width), (kh, kw), stride, padding)
    y = np.zeros((n_images, out_h, out_w, cout), np.float32)
    for n in range(n_images):
        values, scale, zero_point = hybrid_quantize(x[n], len(np.unique(weight_scale)) > 1)
        q = np.array(values).reshape(height, width, cin)
        for oy in range(out_h):
            for ox in range(out_w):
                for o in range(cout):
                    acc = 0
                    for ky in range(kh):
                        for kx in range(kw):
                            iy, ix = oy * stride[0] + ky - top, ox * stride[1] + kx - left
                            if 0 <= iy < height and 0 <= ix < width:
                                for i in range(cin):
                                    acc += (int(q[iy, ix, i]) - zero_point) * int(kernel[o, ky, kx, i])
                    y[n, oy, ox, o] = _hybrid_output(acc, scale, weight_scale, bias, o)
    return y


def hybrid_depthwise_conv2d(x, kernel, weight_scale, bias, stride=(1, 1), padding="SAME",
                            depth_multiplier=1):
    """Hybrid DEPTHWISE_CONV_2D by loops: asymmetric per image, (acc * w_scale) * input_scale."""
    n_images, height, width, channels = x.shape
    _, kh, kw, channels_out = kernel.shape
    top, left, out_h, out_w = _geometry((height, width), (kh, kw), stride, padding)
    y = np.zeros((n_images, out_h, out_w, channels_out), np.float32)
    for n in range(n_images):
        values, scale, zero_point = hybrid_quantize(x[n], True)
        q = np.array(values).reshape(height, width, channels)
        for oy in range(out_h):
            for ox in range(out_w):
                for o in range(channels_out):
                    acc = 0
                    for ky in range(kh):
                        for kx in range(kw):
                            iy, ix = oy * stride[0] + ky - top, ox * stride[1] + kx - left
                            if 0 <= iy < height and 0 <= ix < width:
                                value = int(q[iy, ix, o // depth_multiplier]) - zero_point
                                acc += value * int(kernel[0, ky, kx, o])
                    y[n, oy, ox, o] = _hybrid_output(acc, scale, weight_scale, bias, o, scales_first=False)
    return y


def hybrid_fully_connected(x, weights, weight_scale, bias, asymmetric):
    """Hybrid FULLY_CONNECTED by loops: each row of x (N, Cin) quantized on its own."""
    y = np.zeros((x.shape[0], weights.shape[0]), np.float32)
    for n in range(x.shape[0]):
        q, scale, zero_point = hybrid_quantize(x[n], asymmetric)
        for o in range(weights.shape[0]):
            acc = sum((q[i] - zero_point) * int(weights[o, i]) for i in range(weights.shape[1]))
            y[n, o] = _hybrid_output(acc, scale, weight_scale, bias, o)
    return y
