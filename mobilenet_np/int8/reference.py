"""Plain-loop twins of ``ops.py``'s int8 kernels, in Python integers: slow, and readable.

Every fixed-point step is written out on Python ints (which never overflow, so each C
integer operation is spelled out: ``>>`` is an arithmetic shift, C's ``/`` truncates toward
zero), and every convolution loops over output pixels and taps skipping the padding.
Same arguments and results as the ``ops`` kernels; tests check the two agree exactly.
"""

from __future__ import annotations

import numpy as np

from ..shapes import conv_output_hw, resolve_padding
from .fixedpoint import Requantize, round_half_away


def _c_div(a: int, b: int) -> int:
    """C's integer division: the quotient truncated toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def srdhm(a: int, b: int, bits: int = 32) -> int:
    """SaturatingRoundingDoublingHighMul on ``bits``-bit ints: round(a * b / 2^(bits-1)).

    The nudge (+2^(bits-2), or 1 - 2^(bits-2) below zero) then C's truncating division:
    every tie rounds up, toward +inf.
    """
    low = -(2 ** (bits - 1))
    if a == low and b == low:
        return 2 ** (bits - 1) - 1
    product = a * b
    nudge = 2 ** (bits - 2) if product >= 0 else 1 - 2 ** (bits - 2)
    return _c_div(product + nudge, 2 ** (bits - 1))


def rdbpot(x: int, exponent: int) -> int:
    """RoundingDivideByPOT: x / 2^exponent, to nearest, ties away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def mbqm(x: int, multiplier: int, shift: int, rounding: str) -> int:
    """MultiplyByQuantizedMultiplier, one int at a time, in the three recipes of fixedpoint."""
    if rounding == "single":
        total = 31 - shift
        return (x * multiplier + (1 << (total - 1))) >> total
    left, right = max(shift, 0), max(-shift, 0)
    if rounding == "double":
        return rdbpot(srdhm(x * (1 << left), multiplier), right)
    high = srdhm(x * (1 << left), multiplier)  # SQRDMULH rounds exactly as gemmlowp's
    return (high + ((1 << right) >> 1)) >> right  # SRSHL by -right: ties up


def _requantize(acc: int, out: Requantize, channel: int) -> int:
    multiplier = int(np.ravel(out.multiplier)[channel % np.size(out.multiplier)])
    shift = int(np.ravel(out.shift)[channel % np.size(out.shift)])
    return min(max(mbqm(acc, multiplier, shift, out.rounding) + out.zero_point, out.lo), out.hi)


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
    n_images, height, width, channels = x.shape
    _, kh, kw, channels_out = kernel.shape
    top, left, out_h, out_w = _geometry((height, width), (kh, kw), stride, padding)
    y = np.zeros((n_images, out_h, out_w, channels_out), out.dtype)
    for n in range(n_images):
        for oy in range(out_h):
            for ox in range(out_w):
                for o in range(channels_out):
                    acc = int(bias[o])
                    for ky in range(kh):
                        for kx in range(kw):
                            iy, ix = oy * stride[0] + ky - top, ox * stride[1] + kx - left
                            if 0 <= iy < height and 0 <= ix < width:
                                value = int(x[n, iy, ix, o // depth_multiplier]) - x_zero_point
                                acc += value * int(kernel[0, ky, kx, o])
                    y[n, oy, ox, o] = _requantize(acc, out, o)
    return y


def fully_connected(x, x_zero_point, weights, bias, out):
    """FULLY_CONNECTED by loops: y[n, o] = requant(bias[o] + sum_i (x[n, i] - zp) * w[o, i])."""
    y = np.zeros((x.shape[0], weights.shape[0]), out.dtype)
    for n in range(x.shape[0]):
        for o in range(weights.shape[0]):
            acc = 0 if bias is None else int(bias[o])
            for i in range(weights.shape[1]):
                acc += (int(x[n, i]) - x_zero_point) * int(weights[o, i])
            y[n, o] = _requantize(acc, out, o)
    return y


def add(a, b, params):
    """ADD (SUB) by elements: each input << 20, scaled (double rounding), summed (subtracted), requantized."""
    a, b = np.broadcast_arrays(a, b)
    y = np.zeros(a.shape, params.out.dtype)
    for index in np.ndindex(a.shape):
        total = 0
        for value, zp, m, s, sign in (
                (a[index], params.a_zero_point, params.a_multiplier, params.a_shift, 1),
                (b[index], params.b_zero_point, params.b_multiplier, params.b_shift, params.b_sign)):
            total += sign * mbqm((int(value) - zp) * (1 << params.left_shift), m, s, "double")
        y[index] = _requantize(total, params.out, 0)
    return y


def mul(a, a_zero_point, b, b_zero_point, out):
    """MUL by elements: requant((a - za) * (b - zb))."""
    a, b = np.broadcast_arrays(a, b)
    y = np.zeros(a.shape, out.dtype)
    for index in np.ndindex(a.shape):
        y[index] = _requantize((int(a[index]) - a_zero_point) * (int(b[index]) - b_zero_point), out, 0)
    return y


def mean_hw(x, multiplier, shift, bias, dtype=np.int8):
    """MEAN over H, W with keep_dims, by loops: raw sum, rescale (16-channel blocks ties up), + bias."""
    n_images, height, width, channels = x.shape
    y = np.zeros((n_images, 1, 1, channels), dtype)
    info = np.iinfo(dtype)
    vector_channels = channels // 16 * 16
    for n in range(n_images):
        for c in range(channels):
            total = sum(int(x[n, i, j, c]) for i in range(height) for j in range(width))
            rounding = "double_up" if c < vector_channels else "double"
            y[n, 0, 0, c] = min(max(mbqm(total, multiplier, shift, rounding) + bias, info.min), info.max)
    return y


def mean(x, x_zero_point, axes, out, keep_dims):
    """MEAN over ``axes`` by loops: sum (x - zp) per output element, requantized."""
    kept = [a for a in range(x.ndim) if a not in axes]
    shape = [1 if a in axes else x.shape[a] for a in range(x.ndim)]
    totals = {}
    for index in np.ndindex(x.shape):
        key = tuple(index[a] for a in kept)
        totals[key] = totals.get(key, 0) + int(x[index]) - x_zero_point
    y = np.zeros([x.shape[a] for a in kept], out.dtype)
    for key, total in totals.items():
        y[key] = _requantize(total, out, 0)
    return y.reshape(shape) if keep_dims else y


def average_pool2d(x, filter_hw, stride, padding, lo=-128, hi=127, dtype=np.int8):
    """AVERAGE_POOL_2D by loops: sum over the taps inside the image / their count, rounded."""
    n_images, height, width, channels = x.shape
    top, left, out_h, out_w = _geometry((height, width), filter_hw, stride, padding)
    y = np.zeros((n_images, out_h, out_w, channels), dtype)
    for n, oy, ox, c in np.ndindex(y.shape):
        values = [int(x[n, iy, ix, c])
                  for iy in range(oy * stride[0] - top, oy * stride[0] - top + filter_hw[0])
                  for ix in range(ox * stride[1] - left, ox * stride[1] - left + filter_hw[1])
                  if 0 <= iy < height and 0 <= ix < width]
        total, count = sum(values), len(values)
        rounded = _c_div(total + count // 2, count) if total > 0 else _c_div(total - count // 2, count)
        y[n, oy, ox, c] = min(max(rounded, lo), hi)
    return y


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
    for index in np.ndindex(x.shape):
        value = (int(x[index]) - params.input_zero_point) * 128  # "hi-res" input, fits int16
        on_output_scale = srdhm(value, params.output_multiplier, 16)
        reluish = value
        if params.reluish_shift > 0:
            reluish = min(max(reluish * 2 ** (params.reluish_shift - 1), -(2**15)), 2**15 - 1)
        reluish = srdhm(reluish, params.reluish_multiplier, 16)
        if params.reluish_shift > 0:
            reluish = min(max(reluish * 2, -(2**15)), 2**15 - 1)
        if params.reluish_shift < 0:
            reluish = rdbpot(reluish, -params.reluish_shift)
        reluish = (reluish + 2**15) >> 1  # gate in [0, 1], Q15
        product = _c_div(reluish * on_output_scale, 2**15)  # SaturatingDoublingHighMul
        result = rdbpot(product, -params.output_shift) + params.output_zero_point
        y[index] = min(max(result, -128), 127)
    return y


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
    for index in np.ndindex(x.shape):
        y[index] = table[int(x[index]) + 128]
    return y


def softmax(x, exp_table, output_scale, output_zero_point, dtype=np.int8):
    """SOFTMAX by loops over the last axis, in float32 scalars, summing left to right."""
    info = np.iinfo(dtype)
    y = np.zeros(x.shape, dtype)
    for row in np.ndindex(x.shape[:-1]):
        values = [int(v) for v in x[row]]
        top = max(values)
        total = np.float32(0.0)
        for v in values:
            total = np.float32(total + exp_table[top - v])
        inverse = np.float32(np.float32(1.0) / np.float32(total * np.float32(output_scale)))
        for k, v in enumerate(values):
            scaled = float(np.float32(exp_table[top - v] * inverse))
            rounded = int(np.trunc(scaled)) + (1 if scaled - np.trunc(scaled) >= 0.5 else 0)
            y[(*row, k)] = min(max(rounded + output_zero_point, int(info.min)), int(info.max))
    return y


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
    """DEQUANTIZE by elements: scale * (q - zp) in float32."""
    y = np.zeros(np.shape(q), np.float32)
    for index in np.ndindex(np.shape(q)):
        y[index] = np.float32(scale) * np.float32(int(q[index]) - zero_point)
    return y


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
