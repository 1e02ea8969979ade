"""TFLite's float32 convolutions, FULLY_CONNECTED, MEAN, HARD_SWISH, SOFTMAX, in TFLite's own order.

Any summation order is within float32 round-off of the exact result, and a float graph
needs no more. A dynamic-range graph does: each hybrid op quantizes its float input to int8,
and one ulp of difference in that input can cross a rounding boundary (a whole quantization
step) or move the image's min/max. So the float ops of a .tflite graph here compute in the
order TFLite's builtin kernels do (TFLite 2.21's x86-64 wheel, no XNNPACK; read from its
kernels and the Eigen headers the wheel ships, then measured: on the V2 0.35/96 and V3-Small
0.75/96 dynamic-range files every tensor equals TFLite's, tests/test_tflite_hybrid.py):

* DEPTHWISE_CONV_2D (``depthwiseconv_float.h``): the accumulator starts at the bias and adds
  ``input * filter`` tap by tap, rows then columns; each product and sum rounded (no FMA).
* CONV_2D (im2col, then ``cpu_backend_gemm`` on Eigen): ``sum_k patch[k] * filter[k]`` over
  k = (kh, kw, Cin), then ``+ bias``. Eigen's matrix-matrix kernel (AVX: 8 floats a packet,
  16 registers: 2 packets of output channels by 4 output pixels a micro-tile) adds k in order
  for the channels in multiples of 16; the ones after (8 or 4 channels, in 4-pixel tiles) go
  through its one-packet kernel, where even k and odd k run in two sums, added after the last
  multiple of 8 of k, then the rest in order.
  One output pixel (a 1x1 image: squeeze-excite) is a matrix-vector product instead: 8 lanes,
  lane l summing k = l, l + 8, ..., folded as ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7)),
  then the k past the last multiple of 8 in order.
  The last channels (past the multiples of 4) and an odd channel count's last matrix-vector
  row take their own orders (``_sum_by_pairs``, ``gemv_in_eigen_order``).
* FULLY_CONNECTED: the same product, weights as the filter (one image: matrix-vector).
* MEAN and whole-image AVERAGE_POOL_2D: positions added one after another, then divided.
* HARD_SWISH (``optimized_ops.h``): ``relu6(x + 3) * (x * (1/6))`` in steps of 4 values; the
  last size % 4 values as ``(x * relu6(x + 3)) * (1/6)``.
* SOFTMAX (``optimized_ops.h`` on Eigen): ``e = exp(beta * (x - max))`` by Eigen's float
  polynomial (``eigen_exp``, every value), each row summed as Eigen's reduction (from the
  row's first 32-byte-aligned value: two 8-float registers in turn, added, folded; then the
  values outside them), then ``e * (1 / sum)``: a multiplication by the reciprocal.

The paths these two files do not reach (depth past a multiple of 8 in the even/odd kernel,
the last channels, odd matrix-vector rows, a pixel count off the 4-wide tiles, a depth
multiplier, the hard-swish tail) were measured on a small float file made for them
(``tests/test_tflite_hybrid.py``). Not modelled, so equal only within the float32 bound as any
order is: Eigen's cache blocking of large products (a depth past its block, some hundreds),
and exponentials below -87 (probabilities under 1e-38, where Eigen scales in two steps).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..shapes import resolve_padding

F32 = np.float32
PACKET = 8  # floats in an AVX register: Eigen's packet
WIDE = 2 * PACKET  # output channels Eigen's 2-packet kernel takes at a time: k in order


def _windows(x: np.ndarray, kh: int, kw: int, stride: tuple[int, int], padding: str) -> np.ndarray:
    """Every receptive field, zero-padded: (N, H, W, C) -> (N, Ho, Wo, kh, kw, C) view."""
    pads = resolve_padding(padding, x.shape[1:3], (kh, kw), stride, "tflite float conv")
    padded = np.pad(x, ((0, 0), *pads, (0, 0)))
    windows = sliding_window_view(padded, (kh, kw), axis=(1, 2))[:, ::stride[0], ::stride[1]]
    return windows.transpose(0, 1, 2, 4, 5, 3)  # (N, Ho, Wo, C, kh, kw) -> (N, Ho, Wo, kh, kw, C)


def _sum_in_order(patches: np.ndarray, weights: np.ndarray, depths: range,
                  acc: np.ndarray | None = None) -> np.ndarray:
    """acc plus weights[k] * patches[k] for k in ``depths``, one float32 rounding each.

    patches (K, P): row k holds every pixel's k-th patch value; weights (K, Cout) -> (Cout, P).
    """
    acc = np.zeros((weights.shape[1], patches.shape[1]), F32) if acc is None else acc
    product = np.empty_like(acc)
    for k in depths:
        np.multiply(weights[k][:, None], patches[k], out=product)  # (Cout, 1) * (P,)
        acc += product
    return acc


def _sum_even_odd(patches: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Eigen's one-packet kernel: even and odd k in two sums up to the last multiple of 8, then in order."""
    depth = weights.shape[0]
    peeled = depth - depth % PACKET
    even, odd = (_sum_in_order(patches, weights, range(first, peeled, 2)) for first in (0, 1))
    return _sum_in_order(patches, weights, range(peeled, depth), even + odd)


def _sum_by_pairs(patches: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Eigen's kernel for the last channels (past the multiples of 4): k in pairs (even k in one
    lane, odd k in another), pair m in register m % 4 up to the last multiple of 8, the
    registers folded (0 + 1) + (2 + 3); the remaining pairs; even + odd; an odd last k."""
    depth = weights.shape[0]
    peeled, paired = depth - depth % PACKET, depth - depth % 2

    def lane(parity: int) -> np.ndarray:
        registers = [_sum_in_order(patches, weights, range(2 * r + parity, peeled, PACKET)) for r in range(4)]
        folded = (registers[0] + registers[1]) + (registers[2] + registers[3])
        return _sum_in_order(patches, weights, range(peeled + parity, paired, 2), folded)
    return _sum_in_order(patches, weights, range(paired, depth), lane(0) + lane(1))


def gemm_in_eigen_order(cols: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """cols (P, K) times weights (K, Cout), added in the order of Eigen's AVX kernels. (P, Cout)."""
    if len(cols) == 1:
        return gemv_in_eigen_order(cols[0], weights)[None]
    cout, depths = weights.shape[1], range(weights.shape[0])
    wide = cout - cout % WIDE  # the 2-packet kernel's channels: k in order
    packed = cout - cout % 4  # then the one-packet (and half-packet) kernel's; then the last ones
    tiles = len(cols) - len(cols) % 4  # output pixels in 4-wide micro-tiles; the rest: k in order
    patches = np.ascontiguousarray(cols.T)  # (K, P): each k's values in one contiguous row
    out = _sum_in_order(patches, weights, depths)  # (Cout, P)
    out[wide:packed, :tiles] = _sum_even_odd(patches[:, :tiles], weights[:, wide:packed])
    out[packed:, :tiles] = _sum_by_pairs(patches[:, :tiles], weights[:, packed:])
    return np.ascontiguousarray(out.T)  # (P, Cout), C order: the next op's sums (MEAN) follow memory order


def gemv_in_eigen_order(col: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One pixel's (K,) patch times weights (K, Cout): Eigen's matrix-vector order. (Cout,)."""
    depth, cout = weights.shape
    full = depth - depth % PACKET
    lanes = np.zeros((PACKET, cout), F32)  # lane l sums k = l, l + 8, ...
    for start in range(0, full, PACKET):
        lanes += col[start:start + PACKET, None] * weights[start:start + PACKET]
    acc = _fold(lanes)[:, None]  # (Cout, 1)
    out = _sum_in_order(col[:, None], weights, range(full, depth), acc.copy())[:, 0]  # then k in order
    if cout % 2 and depth - full >= 4:  # an odd count's last row runs alone: 4 more k in one step
        step = col[full:full + 4] * weights[full:full + 4, -1]  # (4,)
        last = acc[-1:] + ((step[0] + step[2]) + (step[1] + step[3]))  # (1, 1)
        out[-1] = _sum_in_order(col[:, None], weights[:, -1:], range(full + 4, depth), last)[0, 0]
    return out


def _fold(lanes: np.ndarray) -> np.ndarray:
    """An AVX register's 8 lane sums (8, C) -> (C,): its two halves added, then ((0+2) + (1+3))."""
    halves = lanes[:4] + lanes[4:]
    return (halves[0] + halves[2]) + (halves[1] + halves[3])


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None,
           stride: tuple[int, int], padding: str) -> np.ndarray:
    """CONV_2D: x (N, H, W, Cin), kernel (Cout, kh, kw, Cin), bias (Cout,) -> (N, Ho, Wo, Cout)."""
    cout, kh, kw, _ = kernel.shape
    windows = _windows(x, kh, kw, stride, padding)  # (N, Ho, Wo, kh, kw, Cin)
    cols = windows.reshape(-1, kernel[0].size)  # (P, kh*kw*Cin): TFLite's im2col
    out = gemm_in_eigen_order(cols, kernel.reshape(cout, -1).T)  # (P, Cout)
    if bias is not None:
        out = out + bias
    return out.reshape(*windows.shape[:3], cout)  # (N, Ho, Wo, Cout)


def fully_connected(x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """FULLY_CONNECTED: x (N, Cin), weights (Cout, Cin) -> (N, Cout); the same Eigen product as
    CONV_2D (one row: the matrix-vector order), then + bias."""
    out = gemm_in_eigen_order(x, weights.T)  # (N, Cout)
    return out if bias is None else out + bias


def depthwise_conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None,
                     stride: tuple[int, int], padding: str, depth_multiplier: int = 1) -> np.ndarray:
    """DEPTHWISE_CONV_2D: x (N, H, W, C), kernel (1, kh, kw, C * M) -> (N, Ho, Wo, C * M).

    Output channel c * M + m reads input channel c (TFLite's layout). Bias first, then the taps.
    """
    _, kh, kw, channels = kernel.shape
    if depth_multiplier > 1:
        x = x.repeat(depth_multiplier, axis=3)  # (N, H, W, C * M)
    windows = _windows(x, kh, kw, stride, padding)  # (N, Ho, Wo, kh, kw, C * M)
    acc = np.zeros((*windows.shape[:3], channels), F32)
    if bias is not None:
        acc += bias
    for i in range(kh):
        for j in range(kw):
            acc += windows[:, :, :, i, j] * kernel[0, i, j]
    return acc


def mean(x: np.ndarray, axes: tuple[int, ...], keep_dims: bool) -> np.ndarray:
    """MEAN (and whole-image AVERAGE_POOL_2D) as TFLite's kernels: per output, the values
    added one after another in row-major order of the reduced axes, then divided by their count."""
    kept = [a for a in range(x.ndim) if a not in axes]
    values = np.transpose(x, (*axes, *kept)).reshape(-1, *[x.shape[a] for a in kept])  # (R, kept...)
    total = np.zeros(values.shape[1:], F32)
    for value in values:
        total += value
    out = total / F32(len(values))
    return out.reshape([1 if a in axes else x.shape[a] for a in range(x.ndim)]) if keep_dims else out


def hard_swish(x: np.ndarray) -> np.ndarray:
    """HARD_SWISH as TFLite's optimized kernel: relu6(x + 3) * (x * (1/6)) four values at a time,
    the last size % 4 values as (x * relu6(x + 3)) * (1/6). Any shape -> the same, float32."""
    flat = x.reshape(-1)
    relu6 = np.minimum(np.maximum(flat + F32(3), F32(0)), F32(6))
    sixth = F32(1) / F32(6)
    out = relu6 * (flat * sixth)
    stepped = len(flat) - len(flat) % 4
    out[stepped:] = (flat[stepped:] * relu6[stepped:]) * sixth
    return out.reshape(x.shape)


EXP_CONSTANTS = {  # Eigen's pexp_float (Cephes): ln 2 in two parts, a degree-6 polynomial
    "log2e": F32(1.44269504088896341), "ln2_hi": F32(-0.693359375), "ln2_lo": F32(2.12194440e-4),
    "p2": F32(0.49999988079071044921875), "p3": F32(0.16666518151760101318359375),
    "p4": F32(4.166965186595916748046875e-2), "p5": F32(8.36894474923610687255859375e-3),
    "p6": F32(1.37449637986719608306884765625e-3)}


def eigen_exp(x: np.ndarray) -> np.ndarray:
    """exp(x) as Eigen's vectorised float exp computes it, each step one float32 rounding (no FMA):
    x = m ln 2 + r, m = floor(x log2(e) + 1/2), exp(r) by a polynomial, times 2^m. Any shape."""
    c = EXP_CONSTANTS
    x = np.minimum(x, F32(88.723))
    m = np.floor(x * c["log2e"] + F32(0.5))
    r = m * c["ln2_lo"] + (m * c["ln2_hi"] + x)  # x - m ln 2, ln 2 in two parts
    r2 = r * r
    even = r2 * (r2 * c["p6"] + c["p4"]) + c["p2"]
    odd = r2 * c["p5"] + c["p3"]
    y = r2 * (r * odd + even) + (r + F32(1))
    return np.where(x < F32(-104), F32(0), np.ldexp(y, m.astype(np.int32))).astype(F32)


def eigen_row_sum(row: np.ndarray, start: int = 0) -> np.float32:
    """Eigen's sum of a contiguous (K,) row whose first 32-byte-aligned value is ``start``:
    8-float registers from there, two in turn, added, one more if left, folded; then the
    values before ``start`` and after the last whole register, one by one."""
    size = len(row)
    whole = (size - start) // PACKET * PACKET
    if whole == 0:
        return np.add.accumulate(row, dtype=F32)[-1]  # too short for a register: in order
    acc = row[start:start + PACKET]
    if whole > PACKET:  # two registers in turn, then added, then one more if left
        pairs = whole // (2 * PACKET) * (2 * PACKET)
        second = row[start + PACKET:start + 2 * PACKET]
        for i in range(start + 2 * PACKET, start + pairs, 2 * PACKET):
            acc, second = acc + row[i:i + PACKET], second + row[i + PACKET:i + 2 * PACKET]
        acc = acc + second
        if whole > pairs:
            acc = acc + row[start + pairs:start + whole]
    total = _fold(acc[:, None])[0]
    for value in (*row[:start], *row[start + whole:]):
        total = total + value
    return total


def softmax(x: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """SOFTMAX over the last axis, as TFLite's optimized kernel. (..., K) -> (..., K) float32."""
    rows = x.reshape(-1, x.shape[-1])  # (R, K), one row after another in memory
    shifted = (rows - rows.max(axis=1, keepdims=True)) * F32(beta)
    e = eigen_exp(shifted)  # (R, K)
    k = rows.shape[1]
    sums = np.array([eigen_row_sum(row, -n * k % PACKET) for n, row in enumerate(e)], F32)  # (R,)
    return (e * (F32(1) / sums)[:, None]).reshape(x.shape)
