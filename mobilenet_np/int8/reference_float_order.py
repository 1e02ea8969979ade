"""Loop twins of ``float_order.py``: a .tflite graph's float ops, value by value, in TFLite's order.

Each output is one sum of float32 products, added one rounding at a time in the order of the
TFLite (Eigen) kernel that computes it on x86-64: slow, and readable. Same arguments and
results as ``float_order``'s kernels, bit for bit (tests/test_tflite_hybrid.py).
"""

from __future__ import annotations

import numpy as np

from .float_order import eigen_exp
from .reference import _geometry


def _eigen_sum(products, kernel):
    """float32 products added as one of Eigen's kernels does (``float_order.py``): "in order"
    (k = 0, 1, ...); "even/odd" (even k and odd k in two sums up to the last multiple of 8,
    added, then the rest in order); "pairs" (lane (k % 8) // 2 * 2 + k % 2 of 8, i.e. pair m
    in register m % 4, registers folded (0+1)+(2+3) per parity, the rest pairs, even + odd,
    an odd last k); "lanes" (8 lanes k % 8 folded ((0+4)+(2+6))+((1+5)+(3+7)), the rest in
    order); "lanes, odd row" (the same 8 lanes, then 4 k folded (0+2)+(1+3), the rest)."""
    total, octets = np.float32(0), len(products) - len(products) % 8
    if kernel == "in order":
        rest = 0
    elif kernel == "even/odd":
        sums = [np.float32(0), np.float32(0)]
        for k in range(octets):
            sums[k % 2] = sums[k % 2] + products[k]
        total, rest = sums[0] + sums[1], octets
    elif kernel == "pairs":
        r = [[np.float32(0), np.float32(0)] for _ in range(4)]  # 4 registers of [even k, odd k]
        for k in range(octets):
            r[k % 8 // 2][k % 2] = r[k % 8 // 2][k % 2] + products[k]
        even, odd = ((r[0][b] + r[1][b]) + (r[2][b] + r[3][b]) for b in (0, 1))
        paired = len(products) - len(products) % 2
        for k in range(octets, paired, 2):
            even, odd = even + products[k], odd + products[k + 1]
        total, rest = even + odd, paired
    else:
        lane = [np.float32(0)] * 8
        for k in range(octets):
            lane[k % 8] = lane[k % 8] + products[k]
        total = ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]))
        rest = octets
        if kernel == "lanes, odd row" and len(products) - octets >= 4:
            step = products[octets:octets + 4]
            total, rest = total + ((step[0] + step[2]) + (step[1] + step[3])), octets + 4
    for p in products[rest:]:
        total = total + p
    return total


def _eigen_kernel(pixel, channel, pixels, channels):
    """Which of Eigen's summation orders computes output (pixel, channel) of a CONV_2D."""
    if pixels == 1:
        return "lanes, odd row" if channels % 2 and channel == channels - 1 else "lanes"
    if channel < channels // 16 * 16 or pixel >= pixels - pixels % 4:
        return "in order"
    return "even/odd" if channel < channels // 4 * 4 else "pairs"


def tflite_conv2d(x, kernel, bias, stride=(1, 1), padding="SAME"):
    """Float CONV_2D by loops, kernel (Cout, kh, kw, Cin): each output's products over
    k = (ky, kx, i) (padding as zeros, as TFLite's im2col) summed in the order of the Eigen
    kernel that computes it (``_eigen_kernel``), then + bias."""
    n_images, height, width, cin = x.shape
    cout, kh, kw, _ = kernel.shape
    top, left, out_h, out_w = _geometry((height, width), (kh, kw), stride, padding)
    pixels = n_images * out_h * out_w
    y = np.zeros((n_images, out_h, out_w, cout), np.float32)
    for p in range(pixels):
        n, oy, ox = p // (out_h * out_w), p // out_w % out_h, p % out_w
        for o in range(cout):
            products = []
            for ky in range(kh):
                for kx in range(kw):
                    iy, ix = oy * stride[0] + ky - top, ox * stride[1] + kx - left
                    inside = 0 <= iy < height and 0 <= ix < width
                    for i in range(cin):
                        value = x[n, iy, ix, i] if inside else np.float32(0)
                        products.append(value * kernel[o, ky, kx, i])
            total = _eigen_sum(products, _eigen_kernel(p, o, pixels, cout))
            y[n, oy, ox, o] = total if bias is None else total + bias[o]
    return y


def tflite_fully_connected(x, weights, bias):
    """Float FULLY_CONNECTED by loops, x (N, Cin), weights (Cout, Cin): the CONV_2D twin on N
    one-pixel images (the same Eigen product)."""
    return tflite_conv2d(x[:, None, None, :], weights[:, None, None, :], bias)[:, 0, 0]  # (N, Cout)


def tflite_depthwise_conv2d(x, kernel, bias, stride=(1, 1), padding="SAME", depth_multiplier=1):
    """Float DEPTHWISE_CONV_2D by loops, kernel (1, kh, kw, C * M): start at the bias, add
    each tap inside the image, rows then columns."""
    n_images, height, width, _ = x.shape
    _, kh, kw, channels_out = kernel.shape
    top, left, out_h, out_w = _geometry((height, width), (kh, kw), stride, padding)
    y = np.zeros((n_images, out_h, out_w, channels_out), np.float32)
    for n in range(n_images):
        for oy in range(out_h):
            for ox in range(out_w):
                for o in range(channels_out):
                    acc = np.float32(0) if bias is None else np.float32(bias[o])
                    for ky in range(kh):
                        for kx in range(kw):
                            iy, ix = oy * stride[0] + ky - top, ox * stride[1] + kx - left
                            if 0 <= iy < height and 0 <= ix < width:
                                acc = acc + x[n, iy, ix, o // depth_multiplier] * kernel[0, ky, kx, o]
                    y[n, oy, ox, o] = acc
    return y


def tflite_mean(x, axes, keep_dims):
    """Float MEAN by loops: each output's values (row-major over the reduced axes) added one
    after another in float32, then divided by their count."""
    x = np.asarray(x, np.float32)
    kept = [a for a in range(x.ndim) if a not in axes]
    count = int(np.prod([x.shape[a] for a in axes]))
    out = np.zeros([x.shape[a] for a in kept], np.float32)
    for out_index in np.ndindex(*out.shape):
        total = np.float32(0)
        for reduced in np.ndindex(*[x.shape[a] for a in axes]):
            where = dict(zip(kept, out_index, strict=True)) | dict(zip(axes, reduced, strict=True))
            total = total + x[tuple(where[a] for a in range(x.ndim))]
        out[out_index] = total / np.float32(count)
    return out.reshape([1 if a in axes else x.shape[a] for a in range(x.ndim)]) if keep_dims else out


def tflite_hard_swish(x):
    """Float HARD_SWISH value by value: relu6(x + 3) * (x * (1/6)) in TFLite's steps of 4,
    (x * relu6(x + 3)) * (1/6) for the last size % 4 values."""
    flat, sixth = np.ravel(x).astype(np.float32), np.float32(1) / np.float32(6)
    out = np.zeros(flat.shape, np.float32)
    stepped = len(flat) - len(flat) % 4
    for k, v in enumerate(flat):
        relu6 = min(max(v + np.float32(3), np.float32(0)), np.float32(6))
        out[k] = relu6 * (v * sixth) if k < stepped else (v * relu6) * sixth
    return out.reshape(np.shape(x))


def _eigen_row_sum(values, start):
    """Eigen's sum of one row, value by value: 8 lanes from the aligned ``start``, a second
    register taking every other 8, the two added, one more 8 if left, the lanes folded
    ((0+4)+(2+6))+((1+5)+(3+7)); then the values before ``start`` and after, in order."""
    whole = (len(values) - start) // 8 * 8
    if whole == 0:
        total = values[0]
        for v in values[1:]:
            total = total + v
        return total
    lanes = [values[start + j] for j in range(8)]
    if whole > 8:
        pairs = whole // 16 * 16
        second = [values[start + 8 + j] for j in range(8)]
        for i in range(start + 16, start + pairs, 16):
            for j in range(8):
                lanes[j], second[j] = lanes[j] + values[i + j], second[j] + values[i + 8 + j]
        lanes = [lanes[j] + second[j] for j in range(8)]
        if whole > pairs:
            lanes = [lanes[j] + values[start + pairs + j] for j in range(8)]
    total = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
    for v in values[:start] + values[start + whole:]:
        total = total + v
    return total


def tflite_softmax(x, beta=1.0):
    """Float SOFTMAX by loops over rows (..., K): exp(beta * (x - max)) value by value with
    Eigen's polynomial (``float_order.eigen_exp``), the row summed as Eigen's reduction from
    its first 32-byte-aligned value, then each times 1 / sum."""
    rows = np.asarray(x, np.float32).reshape(-1, np.shape(x)[-1])
    y = np.zeros(rows.shape, np.float32)
    for n, row in enumerate(rows):
        top = max(row)
        e = [np.float32(eigen_exp(np.float32((v - top) * np.float32(beta)))) for v in row]
        inverse = np.float32(1) / _eigen_row_sum(e, -n * len(row) % 8)
        for k, value in enumerate(e):
            y[n, k] = value * inverse
    return y.reshape(np.shape(x))
