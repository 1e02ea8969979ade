"""Plain-loop twins of the convolution kernels in ``ops.py``: slow, and readable line by line.

Each loops over output pixels and kernel taps exactly as the textbook formula reads,
skipping taps that fall on the zero padding instead of building a padded copy.
Tests check that these and the vectorised kernels of ``ops.py`` agree, and both agree with
TensorFlow.
"""

from __future__ import annotations

import numpy as np

from .shapes import (
    Padding,
    as_float32,
    check_conv_args,
    check_depthwise_args,
    check_pointwise_args,
    check_squeeze_excite_args,
    conv_output_hw,
    resolve_padding,
)


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
    x, kernel, bias, (sh, sw) = check_depthwise_args(x, kernel, bias, stride, "depthwise_conv2d")
    n_images, height, width, channels = x.shape
    kh, kw, _, multiplier = kernel.shape
    pads = resolve_padding(padding, (height, width), (kh, kw), (sh, sw), "depthwise_conv2d")
    out_h, out_w = conv_output_hw((height, width), (kh, kw), (sh, sw), pads, "depthwise_conv2d")
    top, left = pads[0][0], pads[1][0]
    out = np.zeros((n_images, out_h, out_w, channels, multiplier), dtype=np.float32)
    for n in range(n_images):
        for oy in range(out_h):
            for ox in range(out_w):
                for ky in range(kh):
                    for kx in range(kw):
                        iy, ix = oy * sh + ky - top, ox * sw + kx - left
                        if not (0 <= iy < height and 0 <= ix < width):
                            continue
                        for c in range(channels):
                            out[n, oy, ox, c] += x[n, iy, ix, c] * kernel[ky, kx, c]
    out = out.reshape(n_images, out_h, out_w, channels * multiplier)  # channel c*M + m
    if bias is not None:
        out += bias
    return out


def pointwise_conv2d(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None,
) -> np.ndarray:
    """1x1 convolution by loops: at every pixel, out[o] = sum over i of x[i] * kernel[i, o]."""
    x, kernel, bias = check_pointwise_args(x, kernel, bias, "pointwise_conv2d")
    n_images, height, width, cin = x.shape
    out = np.zeros((n_images, height, width, kernel.shape[1]), dtype=np.float32)
    for n in range(n_images):
        for y in range(height):
            for x_ in range(width):
                for i in range(cin):
                    out[n, y, x_] += x[n, y, x_, i] * kernel[i]
    if bias is not None:
        out += bias
    return out


def hard_sigmoid(x: np.ndarray) -> np.ndarray:
    """The piecewise definition, element by element: 0 below -3, 1 above 3, x/6 + 1/2 between."""
    x = as_float32("x", x, "hard_sigmoid")
    out = np.empty_like(x)
    for index, value in np.ndenumerate(x):
        out[index] = 0.0 if value <= -3 else 1.0 if value >= 3 else value / 6 + 0.5
    return out


def hard_swish(x: np.ndarray) -> np.ndarray:
    """Piecewise, element by element: 0 below -3, x above 3, x * (x + 3) / 6 between."""
    x = as_float32("x", x, "hard_swish")
    out = np.empty_like(x)
    for index, value in np.ndenumerate(x):
        out[index] = 0.0 if value <= -3 else value if value >= 3 else value * (value + 3) / 6
    return out


def squeeze_excite(
    x: np.ndarray, squeeze_kernel: np.ndarray, squeeze_bias: np.ndarray,
    excite_kernel: np.ndarray, excite_bias: np.ndarray,
) -> np.ndarray:
    """Squeeze-and-excite by loops; same arguments and shapes as ``ops.squeeze_excite``."""
    x, squeeze, excite = check_squeeze_excite_args(x, squeeze_kernel, excite_kernel,
                                                   "squeeze_excite")
    n_images, height, width, channels = x.shape
    out = np.empty_like(x)
    for n in range(n_images):
        pooled = [x[n, :, :, c].sum() / (height * width) for c in range(channels)]
        hidden = [max(0.0, squeeze_bias[h] + sum(pooled[c] * squeeze[c, h]
                                                 for c in range(channels)))
                  for h in range(squeeze.shape[1])]
        for c in range(channels):
            logit = excite_bias[c] + sum(hidden[h] * excite[h, c] for h in range(len(hidden)))
            gate = 0.0 if logit <= -3 else 1.0 if logit >= 3 else logit / 6 + 0.5
            out[n, :, :, c] = x[n, :, :, c] * gate
    return out
