"""Vectorised NumPy kernels. Their plain-loop twins live in ``reference.py``.

All activations are NHWC ``(N, H, W, C)``; inputs of any integer or float dtype are
accepted and computed in float32, and every kernel returns float32.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import InputError
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


def zero_pad(x: np.ndarray, padding: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """Pad H and W with zeros: ``((top, bottom), (left, right))``; (N, H, W, C) -> (N, H', W', C)."""
    x = as_float32("x", x, "zero_pad")
    check_rank("x", x, 4, "(N, H, W, C)", "zero_pad")
    (top, bottom), (left, right) = resolve_padding(padding, x.shape[1:3], (1, 1), (1, 1), "zero_pad")
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def _padded_windows(
    x: np.ndarray, kernel_hw: tuple[int, int], stride: tuple[int, int], padding: Padding, func: str,
) -> np.ndarray:
    """Every receptive field of a convolution as a strided view, no copy.

    x (N, H, W, C) -> windows (N, Ho, Wo, C, kh, kw), where Ho = floor((H + pads - kh) / s) + 1.
    """
    pads = resolve_padding(padding, x.shape[1:3], kernel_hw, stride, func)
    out_h, out_w = conv_output_hw(x.shape[1:3], kernel_hw, stride, pads, func)
    if any(any(p) for p in pads):
        x = np.pad(x, ((0, 0), *pads, (0, 0)))
    windows = sliding_window_view(x, kernel_hw, axis=(1, 2))  # (N, Hp-kh+1, Wp-kw+1, C, kh, kw)
    return windows[:, : (out_h - 1) * stride[0] + 1 : stride[0],
                   : (out_w - 1) * stride[1] + 1 : stride[1]]


def conv2d(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1, padding: Padding = "same", groups: int = 1,
) -> np.ndarray:
    """Standard (or grouped) 2-D convolution by im2col + matrix multiply.

    Parameters
    ----------
    x : (N, H, W, Cin)
    kernel : (kh, kw, Cin // groups, Cout); group g maps input channels
        ``[g*Cin/groups, (g+1)*Cin/groups)`` to output channels ``[g*Cout/groups, ...)``.
    bias : (Cout,) or None
    stride : int or (sh, sw)
    padding : "same" (TensorFlow's rule), "valid", or ((top, bottom), (left, right))
    groups : 1 is a standard convolution; groups = Cin with one filter per group is depthwise.

    Returns
    -------
    (N, Ho, Wo, Cout) float32, with Ho = floor((H + top + bottom - kh) / sh) + 1.
    """
    x, kernel, bias, stride = check_conv_args(x, kernel, bias, stride, groups, "conv2d")
    kh, kw, cin_per_group, cout = kernel.shape
    windows = _padded_windows(x, (kh, kw), stride, padding, "conv2d")
    n, out_h, out_w = windows.shape[:3]
    # im2col: one row per output pixel, one column per (tap, input channel) pair.
    cols = windows.transpose(0, 1, 2, 4, 5, 3)  # (N, Ho, Wo, kh, kw, Cin)
    cols = cols.reshape(n * out_h * out_w, kh * kw, groups, cin_per_group)  # copies once
    cout_per_group = cout // groups
    out = np.empty((n * out_h * out_w, cout), dtype=np.float32)
    for g in range(groups):
        filters = slice(g * cout_per_group, (g + 1) * cout_per_group)
        group_cols = cols[:, :, g, :].reshape(-1, kh * kw * cin_per_group)  # (P, kh*kw*Cin/g)
        group_kernel = kernel[:, :, :, filters].reshape(kh * kw * cin_per_group, cout_per_group)
        np.matmul(group_cols, group_kernel, out=out[:, filters])
    if bias is not None:
        out += bias
    return out.reshape(n, out_h, out_w, cout)


def depthwise_conv2d(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1, padding: Padding = "same",
) -> np.ndarray:
    """Depthwise convolution: each channel is filtered on its own, by shifted-slice accumulation.

    Parameters
    ----------
    x : (N, H, W, C)
    kernel : (kh, kw, C, M), M the depth multiplier
    bias : (C * M,) or None

    Returns
    -------
    (N, Ho, Wo, C * M) float32; output channel ``c * M + m`` is input channel c through
    filter m (TensorFlow's order). Ho as in ``conv2d``.
    """
    x, kernel, bias, stride = check_depthwise_args(x, kernel, bias, stride, "depthwise_conv2d")
    kh, kw, channels, multiplier = kernel.shape
    windows = _padded_windows(x, (kh, kw), stride, padding, "depthwise_conv2d")
    n, out_h, out_w = windows.shape[:3]
    out = np.zeros((n, out_h, out_w, channels, multiplier), dtype=np.float32)
    # One pass per tap: add that tap's input pixels times its per-channel weights.
    for i in range(kh):
        for j in range(kw):
            tap = windows[:, :, :, :, i, j]  # (N, Ho, Wo, C)
            out += tap[..., None] * kernel[i, j]  # (N, Ho, Wo, C, 1) * (C, M)
    out = out.reshape(n, out_h, out_w, channels * multiplier)
    if bias is not None:
        out += bias
    return out


def pointwise_conv2d(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None,
) -> np.ndarray:
    """1x1 convolution: one matrix multiply that mixes channels at every pixel.

    x (N, H, W, Cin), kernel (1, 1, Cin, Cout) or (Cin, Cout), bias (Cout,) -> (N, H, W, Cout).
    """
    x, kernel, bias = check_pointwise_args(x, kernel, bias, "pointwise_conv2d")
    n, h, w, cin = x.shape
    out = x.reshape(n * h * w, cin) @ kernel  # (N*H*W, Cout)
    if bias is not None:
        out += bias
    return out.reshape(n, h, w, kernel.shape[1])


def batch_norm(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
    variance: np.ndarray, epsilon: float = 1e-3,
) -> np.ndarray:
    """Inference batch norm over the last axis: ``gamma * (x - mean) / sqrt(variance + eps) + beta``.

    x (..., C); gamma, beta, mean, variance (C,). Keras's default epsilon is 1e-3.
    """
    x = as_float32("x", x, "batch_norm")
    stats = {"gamma": gamma, "beta": beta, "mean": mean, "variance": variance}
    for name, value in stats.items():
        stats[name] = as_float32(name, value, "batch_norm")
        if stats[name].shape != (x.shape[-1],):
            raise InputError(
                f"batch_norm: {name} must have shape ({x.shape[-1]},) to match x "
                f"{tuple(x.shape)}, got {tuple(stats[name].shape)}"
            )
    scale = stats["gamma"] / np.sqrt(stats["variance"] + np.float32(epsilon))
    return (x - stats["mean"]) * scale + stats["beta"]


def relu6(x: np.ndarray) -> np.ndarray:
    """``min(max(x, 0), 6)``, elementwise."""
    return np.clip(as_float32("x", x, "relu6"), 0.0, 6.0)


def global_average_pool(x: np.ndarray, keepdims: bool = False) -> np.ndarray:
    """Mean over H and W: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with ``keepdims``."""
    x = as_float32("x", x, "global_average_pool")
    check_rank("x", x, 4, "(N, H, W, C)", "global_average_pool")
    return x.mean(axis=(1, 2), keepdims=keepdims, dtype=np.float32)


def global_max_pool(x: np.ndarray, keepdims: bool = False) -> np.ndarray:
    """Max over H and W: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with ``keepdims``."""
    x = as_float32("x", x, "global_max_pool")
    check_rank("x", x, 4, "(N, H, W, C)", "global_max_pool")
    return x.max(axis=(1, 2), keepdims=keepdims)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax: subtracting the max first keeps ``exp`` from overflowing."""
    logits = as_float32("logits", logits, "softmax")
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def rescale_pixels(x: np.ndarray) -> np.ndarray:
    """Keras's ``Rescaling(1 / 127.5, offset=-1)``: pixels [0, 255] -> [-1, 1], as x * s - 1."""
    return as_float32("x", x, "rescale_pixels") * np.float32(1 / 127.5) - np.float32(1.0)


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)``, elementwise."""
    return np.maximum(as_float32("x", x, "relu"), 0.0)


def hard_sigmoid(x: np.ndarray) -> np.ndarray:
    """MobileNetV3's cheap sigmoid, as Keras defines it: ``relu6(x + 3) / 6``."""
    x = as_float32("x", x, "hard_sigmoid")
    return np.clip(x + np.float32(3.0), 0.0, 6.0) / np.float32(6.0)


def hard_swish(x: np.ndarray) -> np.ndarray:
    """MobileNetV3's cheap swish: ``x * hard_sigmoid(x)``."""
    x = as_float32("x", x, "hard_swish")
    return x * hard_sigmoid(x)


def squeeze_excite(
    x: np.ndarray, squeeze_kernel: np.ndarray, squeeze_bias: np.ndarray,
    excite_kernel: np.ndarray, excite_bias: np.ndarray,
) -> np.ndarray:
    """MobileNetV3's squeeze-and-excite gate, vectorised.

    x (N, H, W, C); squeeze (C, C') and (C',); excite (C', C) and (C,) (1x1 kernels may also be
    given as (1, 1, Cin, Cout)). Each channel is rescaled by a number in [0, 1] computed from
    the whole image: ``x * hard_sigmoid(relu(mean(x) @ Ws + bs) @ We + be)``.
    """
    x, squeeze, excite = check_squeeze_excite_args(x, squeeze_kernel, excite_kernel,
                                                   "squeeze_excite")
    pooled = x.mean(axis=(1, 2), dtype=np.float32)  # (N, C): squeeze space away
    hidden = relu(pooled @ squeeze + squeeze_bias)  # (N, C')
    gate = hard_sigmoid(hidden @ excite + excite_bias)  # (N, C), in [0, 1]
    return x * gate[:, None, None, :]


def dense(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Fully connected: x (N, Cin) @ kernel (Cin, Cout) + bias (Cout,) -> (N, Cout)."""
    x = as_float32("x", x, "dense")
    check_rank("x", x, 2, "(N, C)", "dense")
    out = x @ as_float32("kernel", kernel, "dense")
    return out if bias is None else out + as_float32("bias", bias, "dense")


def add(x: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """The residual connection: x plus the saved output of an earlier layer, same shape."""
    return as_float32("x", x, "add") + as_float32("earlier", earlier, "add")


def multiply(x: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """Squeeze-and-excite's gate: the earlier activation (N, H, W, C) times x (N, 1, 1, C)."""
    return as_float32("earlier", earlier, "multiply") * as_float32("x", x, "multiply")


# MobileNetV4 (timm's): GELU, layer scale and mobile multi-query attention.
def erf(z: np.ndarray) -> np.ndarray:
    """The error function in float64, to ~1e-15: its Maclaurin series for |z| < 2, Laplace's
    continued fraction for erfc(|z|) above (NumPy has no erf; the series alone would cancel
    catastrophically for large |z|)."""
    z = np.asarray(z, np.float64)
    a = np.abs(z)
    out = np.empty_like(a)
    small = a < 2.0
    s = a[small]
    term, total = s.copy(), s.copy()
    for n in range(1, 40):  # erf(s) = 2/sqrt(pi) sum (-1)^n s^(2n+1) / (n! (2n+1))
        term *= -s * s / n
        total += term / (2 * n + 1)
    out[small] = 2 / np.sqrt(np.pi) * total
    b = a[~small]
    fraction = b.copy()  # erfc(b) = exp(-b^2) / sqrt(pi) / (b + (1/2)/(b + 1/(b + (3/2)/(b + ...))))
    for k in range(80, 0, -1):
        fraction = b + (k / 2) / fraction
    out[~small] = 1.0 - np.exp(-b * b) / np.sqrt(np.pi) / fraction
    return np.sign(z) * out


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2 (PyTorch's default, not the tanh form)."""
    wide = as_float32("x", x, "gelu").astype(np.float64)  # as reference.activate: one rounding
    return (0.5 * wide * (1.0 + erf(wide * np.sqrt(0.5)))).astype(np.float32)


def layer_scale(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """A learned scale per channel: x (..., C) * scale (C,)."""
    return as_float32("x", x, "layer_scale") * as_float32("scale", scale, "layer_scale")


def multi_query_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int) -> np.ndarray:
    """Attention with ``heads`` query heads and ONE key/value head that they all share.

    q (N, L, heads * d), query channel ``head * d + j`` (timm's order); k (N, S, d); v (N, S, dv)
    -> (N, L, heads * dv), output channel ``head * dv + j``. Each head: softmax(q k^T / sqrt d) v.
    """
    n, length, _ = q.shape
    d = k.shape[-1]
    q = q.reshape(n, length, heads, d).transpose(0, 2, 1, 3)  # (N, heads, L, d)
    scores = (q * np.float32(d**-0.5)) @ k[:, None].transpose(0, 1, 3, 2)  # (N, heads, L, S)
    out = softmax(scores, axis=-1) @ v[:, None]  # (N, heads, L, dv): one V for every head
    return out.transpose(0, 2, 1, 3).reshape(n, length, -1)  # (N, L, heads * dv)


def normalize_pixels(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """timm's preprocessing inside the model: pixels [0, 255] -> (x / 255 - mean) / std per
    channel, computed as x * (1 / (255 std)) - mean / std. x (..., C), mean and std (C,)."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    scale, offset = (1 / (255 * std)).astype(np.float32), (mean / std).astype(np.float32)
    return as_float32("x", x, "normalize_pixels") * scale - offset
