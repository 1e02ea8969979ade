"""A .tflite graph's float ops on the package's own float kernels (``mobilenet_np.ops``): BLAS.

The same functions, arguments and shapes as ``float_order.py``, several times faster, and
equal to TFLite's results within float32 round-off rather than bit for bit (the bound:
docs/int8.md): the sums run in BLAS's order, not TFLite's. Where nothing quantizes these
results (a float file) that is all float32 can promise anyway; a dynamic-range graph, whose
hybrid ops quantize them, runs ``float_order`` instead (``float_graph.float_kernels``).
"""

from __future__ import annotations

import numpy as np

from .. import ops


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None,
           stride: tuple[int, int], padding: str) -> np.ndarray:
    """CONV_2D: x (N, H, W, Cin), kernel (Cout, kh, kw, Cin), bias (Cout,) -> (N, Ho, Wo, Cout)."""
    ours = np.transpose(kernel, (1, 2, 3, 0))  # (Cout, kh, kw, Cin) -> (kh, kw, Cin, Cout)
    return ops.conv2d(x, ours, bias, stride, padding.lower())


def fully_connected(x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """FULLY_CONNECTED: x (N, Cin), weights (Cout, Cin) -> (N, Cout)."""
    return ops.dense(x, weights.T, bias)


def depthwise_conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None,
                     stride: tuple[int, int], padding: str, depth_multiplier: int = 1) -> np.ndarray:
    """DEPTHWISE_CONV_2D: x (N, H, W, C), kernel (1, kh, kw, C * M) -> (N, Ho, Wo, C * M)."""
    _, kh, kw, channels_out = kernel.shape
    ours = kernel.reshape(kh, kw, x.shape[-1], depth_multiplier)  # (kh, kw, C, M): channel c*M + m
    return ops.depthwise_conv2d(x, ours, bias, stride, padding.lower())


def mean(x: np.ndarray, axes: tuple[int, ...], keep_dims: bool) -> np.ndarray:
    """MEAN (and whole-image AVERAGE_POOL_2D) over ``axes``, in float32."""
    return x.mean(axis=axes, keepdims=keep_dims, dtype=np.float32)


def hard_swish(x: np.ndarray) -> np.ndarray:
    """HARD_SWISH: x * relu6(x + 3) / 6. Any shape -> the same, float32."""
    return ops.hard_swish(x)


def softmax(x: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """SOFTMAX of ``beta * x`` over the last axis. (..., K) -> (..., K) float32."""
    return ops.softmax(x * np.float32(beta) if beta != 1 else x)
