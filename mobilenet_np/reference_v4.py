"""Plain-loop twins of MobileNetV4's kernels in ``ops.py``: layer scale, multi-query attention.

Kept apart from ``reference.py`` (the V1-V3 twins) so that each file stays readable; GELU is
there, an activation code of the loop cores that the numba backend compiles. Every twin loops
element by element as the formula reads; tests check them against ``ops.py``.
"""

from __future__ import annotations

import math

import numpy as np

from .shapes import as_float32, check_rank


def normalize_pixels(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """out[..., c] = x[..., c] * (1 / (255 std[c])) - mean[c] / std[c], element by element."""
    x = as_float32("x", x, "normalize_pixels")
    scale = [np.float32(1 / (255 * float(s))) for s in std]
    offset = [np.float32(float(m) / float(s)) for m, s in zip(mean, std, strict=True)]
    out = np.empty_like(x)
    for index in np.ndindex(x.shape):
        out[index] = x[index] * scale[index[-1]] - offset[index[-1]]
    return out


def layer_scale(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """out[..., c] = x[..., c] * scale[c], element by element."""
    x, scale = as_float32("x", x, "layer_scale"), as_float32("scale", scale, "layer_scale")
    out = np.empty_like(x)
    for index in np.ndindex(x.shape):
        out[index] = x[index] * scale[index[-1]]
    return out


def multi_query_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int) -> np.ndarray:
    """For every image n, head h and query position l, by loops:

    score[s] = sum over j of q[n, l, h * d + j] * k[n, s, j] / sqrt(d)   (every key position s)
    p = softmax(score);  out[n, l, h * dv + j] = sum over s of p[s] * v[n, s, j].

    q (N, L, heads * d), k (N, S, d), v (N, S, dv) -> (N, L, heads * dv).
    """
    arrays = {name: as_float32(name, a, "multi_query_attention") for name, a in zip("qkv", (q, k, v),
                                                                                 strict=True)}
    for name, array in arrays.items():
        check_rank(name, array, 3, "(N, positions, channels)", "multi_query_attention")
    q, k, v = arrays.values()
    n_images, length, _ = q.shape
    positions, d = k.shape[1:]
    dv = v.shape[2]
    scale = np.float32(1 / math.sqrt(d))
    out = np.zeros((n_images, length, heads * dv), np.float32)
    score = np.empty(positions, np.float32)
    for n in range(n_images):
        for h in range(heads):
            for l_ in range(length):
                for s in range(positions):
                    total = np.float32(0.0)
                    for j in range(d):
                        total += q[n, l_, h * d + j] * scale * k[n, s, j]
                    score[s] = total
                top = score.max()
                weights = np.exp(score - top)
                weights /= weights.sum()
                for s in range(positions):
                    for j in range(dv):
                        out[n, l_, h * dv + j] += weights[s] * v[n, s, j]
    return out
