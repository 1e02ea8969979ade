"""Plain-loop twins of the kernels in ``ops.py``: slow, and readable line by line.

They loop over output pixels and kernel taps exactly as the textbook formula reads, skipping
taps that fall on the zero padding instead of building a padded copy. The twins of what the
fused path runs (depthwise, 1x1, squeeze-and-excite, pooling, the activations) are checked
wrappers around a *loop core*: plain loops over arrays and numbers, with no strings, lists or
optional keywords, so that Numba compiles them unchanged. The ``numba`` backend
(``compiled.py``) runs these very loops; run by the Python interpreter, they are the loop
twins. Tests check the twins against ``ops.py`` and TensorFlow, the compiled cores against
the twins. (``conv2d`` keeps its loops inline: the fused path runs its one standard conv,
the stem, as im2col + BLAS on both backends.)

A core writes into ``out``, starting every sum from its bias and applying ``activation`` (one
of ``ACTIVATION_CODES``) to the finished sum, as a fused kernel does.
"""

from __future__ import annotations

import math

import numpy as np

from .shapes import (
    Padding,
    as_float32,
    check_conv_args,
    check_depthwise_args,
    check_pointwise_args,
    check_rank,
    check_squeeze_excite_args,
    conv_output_hw,
    resolve_padding,
)

# Activation codes: the cores take a number, not a string, so that Numba compiles them.
LINEAR, RELU, RELU6, HARD_SIGMOID, HARD_SWISH, GELU = range(6)
ACTIVATION_CODES = {None: LINEAR, "relu": RELU, "relu6": RELU6, "hard_sigmoid": HARD_SIGMOID,
               "hard_swish": HARD_SWISH, "gelu": GELU}
# float32 constants: a Python float would turn float32 arithmetic into float64 under Numba.
ZERO, THREE, SIX = np.float32(0.0), np.float32(3.0), np.float32(6.0)
SQRT_HALF = math.sqrt(0.5)  # gelu is computed in float64 (as ops.gelu), then rounded once


def activate(value: np.float32, activation: int) -> np.float32:
    """One number through an activation, with Keras's formulas: relu6(x) = min(max(x, 0), 6),
    hard_sigmoid(x) = relu6(x + 3) / 6, hard_swish(x) = x * hard_sigmoid(x); and PyTorch's
    gelu(x) = x (1 + erf(x / sqrt 2)) / 2."""
    if activation == RELU:
        return max(value, ZERO)
    if activation == RELU6:
        return min(max(value, ZERO), SIX)
    if activation == HARD_SIGMOID:
        return min(max(value + THREE, ZERO), SIX) / SIX
    if activation == HARD_SWISH:
        return value * (min(max(value + THREE, ZERO), SIX) / SIX)
    if activation == GELU:  # MobileNetV4-Hybrid-Large: x * Phi(x), PyTorch's exact form
        wide = np.float64(value)
        return np.float32(0.5 * wide * (1.0 + math.erf(wide * SQRT_HALF)))
    return value


def depthwise_loop(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: tuple[int, int],
                   top_left: tuple[int, int], activation: int, out: np.ndarray) -> None:
    """out[n, oy, ox, c] = act(bias[c] + sum over (ky, kx) of x[n, iy, ix, c] * kernel[ky, kx, c]),
    with iy = oy * sh + ky - top and ix = ox * sw + kx - left.

    x (N, H, W, C), kernel (kh, kw, C): one filter per channel (a depth multiplier M > 1 is
    M copies of each input channel first), bias (C,), out (N, Ho, Wo, C). One output row at
    a time, each tap adds its share to the whole row (faster than tap after tap on one
    pixel, whose every add waits for the one before it).
    """
    n_images, height, width, channels = x.shape
    kh, kw = kernel.shape[:2]
    for n in range(n_images):
        for oy in range(out.shape[1]):
            for ox in range(out.shape[2]):
                for c in range(channels):
                    out[n, oy, ox, c] = bias[c]
            for ky in range(kh):
                iy = oy * stride[0] + ky - top_left[0]
                if not 0 <= iy < height:
                    continue  # this tap row sits on zero padding: it adds nothing
                for kx in range(kw):
                    for ox in range(out.shape[2]):
                        ix = ox * stride[1] + kx - top_left[1]
                        if 0 <= ix < width:
                            for c in range(channels):
                                out[n, oy, ox, c] += x[n, iy, ix, c] * kernel[ky, kx, c]
            for ox in range(out.shape[2]):
                for c in range(channels):
                    out[n, oy, ox, c] = activate(out[n, oy, ox, c], activation)


def matmul_loop(x: np.ndarray, kernel: np.ndarray, out: np.ndarray) -> None:
    """out[p, o] = sum over i of x[p, i] * kernel[i, o]: a 1x1 convolution at every pixel p."""
    for p in range(x.shape[0]):
        for o in range(kernel.shape[1]):
            out[p, o] = ZERO
        for i in range(x.shape[1]):
            for o in range(kernel.shape[1]):
                out[p, o] += x[p, i] * kernel[i, o]


def bias_activate_loop(out: np.ndarray, bias: np.ndarray, activation: int) -> None:
    """In place, out (P, C) = act(out + bias): what follows a matmul, in one pass."""
    for p in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[p, c] = activate(out[p, c] + bias[c], activation)


def global_pool_loop(x: np.ndarray, average: bool, out: np.ndarray) -> None:
    """out[n, c] = mean (``average``) or max of x[n, :, :, c] over the image: (N, C)."""
    n_images, height, width, channels = x.shape
    for n in range(n_images):
        for c in range(channels):
            out[n, c] = ZERO if average else x[n, 0, 0, c]
        for y in range(height):
            for x_ in range(width):
                for c in range(channels):
                    if average:
                        out[n, c] += x[n, y, x_, c]
                    else:
                        out[n, c] = max(out[n, c], x[n, y, x_, c])
        if average:
            for c in range(channels):
                out[n, c] /= np.float32(height * width)


def squeeze_excite_loop(x: np.ndarray, squeeze: np.ndarray, squeeze_bias: np.ndarray,
                        excite: np.ndarray, excite_bias: np.ndarray, out: np.ndarray) -> None:
    """out = x * hard_sigmoid(excite @ relu(squeeze @ mean(x) + b1) + b2), gate per channel.

    x (N, H, W, C), squeeze (C, C'), excite (C', C), out (N, H, W, C) (may be x itself).
    """
    n_images, height, width, channels = x.shape
    pooled = np.empty((n_images, channels), np.float32)
    global_pool_loop(x, True, pooled)
    hidden = np.empty((1, squeeze.shape[1]), np.float32)
    gate = np.empty((1, channels), np.float32)
    for n in range(n_images):
        matmul_loop(pooled[n:n + 1], squeeze, hidden)
        bias_activate_loop(hidden, squeeze_bias, RELU)
        matmul_loop(hidden, excite, gate)
        bias_activate_loop(gate, excite_bias, HARD_SIGMOID)
        for y in range(height):
            for x_ in range(width):
                for c in range(channels):
                    out[n, y, x_, c] = x[n, y, x_, c] * gate[0, c]


# The loop twins: the checked, ``ops.py``-shaped front of each core.

def conv2d(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1, padding: Padding = "same", groups: int = 1,
) -> np.ndarray:
    """Grouped 2-D convolution by loops; same arguments and shapes as ``ops.conv2d``.

    out[n, oy, ox, o] = sum over (ky, kx, i in o's group) of x[n, iy, ix, i] * kernel[ky, kx, i', o]
    with iy = oy * sh + ky - top and ix = ox * sw + kx - left.
    """
    x, kernel, bias, (sh, sw) = check_conv_args(x, kernel, bias, stride, groups, "conv2d")
    n_images, height, width, _ = x.shape
    kh, kw, cin_per_group, cout = kernel.shape
    pads = resolve_padding(padding, (height, width), (kh, kw), (sh, sw), "conv2d")
    out_h, out_w = conv_output_hw((height, width), (kh, kw), (sh, sw), pads, "conv2d")
    top, left = pads[0][0], pads[1][0]
    cout_per_group = cout // groups
    out = np.zeros((n_images, out_h, out_w, cout), dtype=np.float32)
    for n in range(n_images):
        for oy in range(out_h):
            for ox in range(out_w):
                for ky in range(kh):
                    for kx in range(kw):
                        iy, ix = oy * sh + ky - top, ox * sw + kx - left
                        if not (0 <= iy < height and 0 <= ix < width):
                            continue  # this tap sits on zero padding: it adds nothing
                        for g in range(groups):
                            inputs = x[n, iy, ix, g * cin_per_group:(g + 1) * cin_per_group]
                            outputs = slice(g * cout_per_group, (g + 1) * cout_per_group)
                            out[n, oy, ox, outputs] += inputs @ kernel[ky, kx, :, outputs]
    if bias is not None:
        out += bias
    return out


def depthwise_conv2d(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1, padding: Padding = "same",
) -> np.ndarray:
    """Depthwise convolution by loops; same arguments and shapes as ``ops.depthwise_conv2d``.

    out[n, oy, ox, c * M + m] = sum over (ky, kx) of x[n, iy, ix, c] * kernel[ky, kx, c, m]
    """
    x, kernel, bias, stride = check_depthwise_args(x, kernel, bias, stride, "depthwise_conv2d")
    kh, kw, channels, multiplier = kernel.shape
    pads = resolve_padding(padding, x.shape[1:3], (kh, kw), stride, "depthwise_conv2d")
    out_h, out_w = conv_output_hw(x.shape[1:3], (kh, kw), stride, pads, "depthwise_conv2d")
    out = np.empty((len(x), out_h, out_w, channels * multiplier), np.float32)
    bias = np.zeros(channels * multiplier, np.float32) if bias is None else bias
    # Output channel c * M + m is input channel c through filter m: repeat each channel M times.
    depthwise_loop(np.repeat(x, multiplier, axis=3), kernel.reshape(kh, kw, -1), bias, stride,
                   (pads[0][0], pads[1][0]), LINEAR, out)
    return out


def pointwise_conv2d(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None,
) -> np.ndarray:
    """1x1 convolution by loops: at every pixel, out[o] = sum over i of x[i] * kernel[i, o]."""
    x, kernel, bias = check_pointwise_args(x, kernel, bias, "pointwise_conv2d")
    n_images, height, width, cin = x.shape
    out = np.empty((n_images * height * width, kernel.shape[1]), np.float32)
    matmul_loop(x.reshape(-1, cin), kernel, out)
    if bias is not None:
        bias_activate_loop(out, bias, LINEAR)
    return out.reshape(n_images, height, width, -1)


def _activation_twin(x: np.ndarray, activation: int, func: str) -> np.ndarray:
    """Any-shaped x through ``activate``, element by element."""
    flat = as_float32("x", x, func).reshape(1, -1).copy()
    bias_activate_loop(flat, np.zeros(flat.shape[1], np.float32), activation)
    return flat.reshape(np.shape(x))


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0), element by element."""
    return _activation_twin(x, RELU, "relu")


def relu6(x: np.ndarray) -> np.ndarray:
    """min(max(x, 0), 6), element by element."""
    return _activation_twin(x, RELU6, "relu6")


def hard_sigmoid(x: np.ndarray) -> np.ndarray:
    """relu6(x + 3) / 6, element by element: 0 below -3, 1 above 3, x / 6 + 1/2 between."""
    return _activation_twin(x, HARD_SIGMOID, "hard_sigmoid")


def hard_swish(x: np.ndarray) -> np.ndarray:
    """x * relu6(x + 3) / 6, element by element: 0 below -3, x above 3, x (x + 3) / 6 between."""
    return _activation_twin(x, HARD_SWISH, "hard_swish")


def gelu(x: np.ndarray) -> np.ndarray:
    """x (1 + erf(x / sqrt 2)) / 2, element by element, with ``math.erf`` in float64."""
    return _activation_twin(x, GELU, "gelu")


def global_average_pool(x: np.ndarray) -> np.ndarray:
    """Mean over H and W by loops: (N, H, W, C) -> (N, C)."""
    return _global_pool(x, True, "global_average_pool")


def global_max_pool(x: np.ndarray) -> np.ndarray:
    """Max over H and W by loops: (N, H, W, C) -> (N, C)."""
    return _global_pool(x, False, "global_max_pool")


def _global_pool(x: np.ndarray, average: bool, func: str) -> np.ndarray:
    """Check x, then run ``global_pool_loop`` into a new (N, C) array."""
    x = as_float32("x", x, func)
    check_rank("x", x, 4, "(N, H, W, C)", func)
    out = np.empty((len(x), x.shape[3]), np.float32)
    global_pool_loop(x, average, out)
    return out


def squeeze_excite(
    x: np.ndarray, squeeze_kernel: np.ndarray, squeeze_bias: np.ndarray,
    excite_kernel: np.ndarray, excite_bias: np.ndarray,
) -> np.ndarray:
    """Squeeze-and-excite by loops; same arguments and shapes as ``ops.squeeze_excite``."""
    x, squeeze, excite = check_squeeze_excite_args(x, squeeze_kernel, excite_kernel,
                                                   "squeeze_excite")
    out = np.empty_like(x)
    squeeze_excite_loop(x, squeeze, as_float32("squeeze_bias", squeeze_bias, "squeeze_excite"),
                        excite, as_float32("excite_bias", excite_bias, "squeeze_excite"), out)
    return out


def batch_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
               variance: np.ndarray, epsilon: float = 1e-3) -> np.ndarray:
    """gamma * (x - mean) / sqrt(variance + eps) + beta, channel by channel: x (..., C)."""
    x = as_float32("x", x, "batch_norm")
    flat, out = x.reshape(-1, x.shape[-1]), np.empty(x.shape, np.float32).reshape(-1, x.shape[-1])
    for c in range(flat.shape[1]):  # (P, C): every pixel of every image, one channel at a time
        scale = np.float32(gamma[c]) / np.sqrt(np.float32(variance[c]) + np.float32(epsilon))
        for p in range(flat.shape[0]):
            out[p, c] = (flat[p, c] - np.float32(mean[c])) * scale + np.float32(beta[c])
    return out.reshape(x.shape)


def zero_pad(x: np.ndarray, padding: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """Copy each pixel of x (N, H, W, C) into a zero frame ((top, bottom), (left, right)) wide."""
    x = as_float32("x", x, "zero_pad")
    check_rank("x", x, 4, "(N, H, W, C)", "zero_pad")
    (top, bottom), (left, right) = resolve_padding(padding, x.shape[1:3], (1, 1), (1, 1), "zero_pad")
    n_images, height, width, channels = x.shape
    out = np.zeros((n_images, height + top + bottom, width + left + right, channels), np.float32)
    for n in range(n_images):
        for y in range(height):
            for x_ in range(width):
                out[n, y + top, x_ + left] = x[n, y, x_]
    return out


def rescale_pixels(x: np.ndarray) -> np.ndarray:
    """Pixels [0, 255] -> [-1, 1], element by element: x * (1 / 127.5) - 1."""
    flat = as_float32("x", x, "rescale_pixels").ravel()
    out = np.empty_like(flat)
    for i in range(flat.size):
        out[i] = flat[i] * np.float32(1 / 127.5) - np.float32(1.0)
    return out.reshape(np.shape(x))


def dense(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Fully connected by loops: out[n, o] = bias[o] + sum over i of x[n, i] * kernel[i, o]."""
    x = as_float32("x", x, "dense")
    check_rank("x", x, 2, "(N, C)", "dense")
    out = np.empty((len(x), kernel.shape[1]), np.float32)
    matmul_loop(x, as_float32("kernel", kernel, "dense"), out)
    if bias is not None:
        bias_activate_loop(out, as_float32("bias", bias, "dense"), LINEAR)
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """exp(z_i - max z) / sum over j of exp(z_j - max z), row by row: (N, K) -> (N, K)."""
    z = as_float32("logits", logits, "softmax")
    check_rank("logits", z, 2, "(N, K)", "softmax")
    out = np.empty_like(z)
    for n in range(len(z)):
        top, total = z[n, 0], ZERO
        for i in range(z.shape[1]):
            top = max(top, z[n, i])
        for i in range(z.shape[1]):
            out[n, i] = np.exp(z[n, i] - top)
            total += out[n, i]
        for i in range(z.shape[1]):
            out[n, i] /= total
    return out


def add(x: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """The residual connection, element by element: x + earlier, same shape."""
    x, earlier = as_float32("x", x, "add"), as_float32("earlier", earlier, "add")
    out = np.empty_like(x)
    for index in np.ndindex(x.shape):
        out[index] = x[index] + earlier[index]
    return out


def multiply(x: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """Squeeze-excite's gate: earlier[n, y, x, c] * x[n, 0, 0, c] at every pixel."""
    x, earlier = as_float32("x", x, "multiply"), as_float32("earlier", earlier, "multiply")
    out = np.empty_like(earlier)
    for n, y, x_, c in np.ndindex(earlier.shape):
        out[n, y, x_, c] = earlier[n, y, x_, c] * x[n, 0, 0, c]
    return out
