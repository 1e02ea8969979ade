"""MobileNetV4's layer kinds, one ``Kind`` record each: GELU, layer scale, mobile multi-query
attention, and timm's ImageNet mean/std normalisation of pixels inside the model.

Registered into ``kinds.KINDS`` on import (``families/v4.py`` imports this module), like any
kind added from outside ``kinds.py`` (see ``docs/extending.md``). Kernels: ``ops.py``; loop
twins: ``reference_v4.py`` (GELU and attention's convolutions: ``reference.py``'s).
"""

from __future__ import annotations

import numpy as np

from . import ops, reference, reference_v4
from .kinds import BN_EPSILON, BN_WEIGHTS, Kind, Layer, register_kind

KV_PARTS = ("key", "value")


# Mobile MQA (Qin et al. 2024, sec. 4): queries at every pixel, in ``heads`` heads; ONE key and
# ONE value head shared by all of them, optionally computed on a strided depthwise-downsampled
# copy of x (``layer.stride`` > 1: fewer key positions, a cheaper score matrix).
def mqa_widths(layer: Layer) -> tuple[int, int, int]:
    """(heads, key width d, value width dv) of an attention layer."""
    return layer.options["heads"], layer.options["key_dim"], layer.options["value_dim"]


def _mqa_weights(layer: Layer) -> dict[str, tuple[int, ...]]:
    """timm's order: query proj, key [down conv, norm] proj, value [down conv, norm] proj, output."""
    channels, out_channels = layer.input_shape[-1], layer.output_shape[-1]
    heads, d, dv = mqa_widths(layer)
    weights = {"query_kernel": (1, 1, channels, heads * d)}
    for part, width in zip(KV_PARTS, (d, dv), strict=True):
        if layer.stride > 1:
            weights[f"{part}_down_depthwise_kernel"] = (layer.kernel, layer.kernel, channels, 1)
            weights.update({f"{part}_down_{name}": (channels,) for name in BN_WEIGHTS})
        weights[f"{part}_kernel"] = (1, 1, channels, width)
    weights["output_kernel"] = (1, 1, heads * dv, out_channels)
    return weights


def kv_positions(layer: Layer) -> int:
    """How many key/value positions each query attends to: H*W, or fewer after downsampling."""
    height, width = layer.options["kv_size"]
    return height * width


def _mqa_macs(layer: Layer) -> int:
    """Projections (q, k, v, output), the K/V downsampling depthwise convs, and attention's two
    matmuls: heads * L * S * d for the scores, heads * L * S * dv for the weighted sum."""
    height, width, channels = layer.input_shape
    length, positions = height * width, kv_positions(layer)
    heads, d, dv = mqa_widths(layer)
    down = 2 * positions * layer.kernel**2 * channels if layer.stride > 1 else 0
    projections = length * channels * heads * d + positions * channels * (d + dv)
    attention = heads * length * positions * (d + dv)
    return projections + down + attention + length * heads * dv * layer.output_shape[-1]


def _key_value(x, layer, w, part, kernels):
    """(N, H, W, C) -> the shared key or value head (N, S, width): [strided depthwise, BN] 1x1."""
    if layer.stride > 1:
        x = kernels.depthwise_conv2d(x, w[f"{part}_down_depthwise_kernel"], stride=layer.stride,
                                     padding=layer.padding)
        x = kernels.batch_norm(x, *(w[f"{part}_down_{name}"] for name in BN_WEIGHTS),
                               epsilon=layer.options.get("epsilon", BN_EPSILON))
    out = kernels.pointwise_conv2d(x, w[f"{part}_kernel"])  # (N, H', W', width)
    return out.reshape(len(out), -1, out.shape[-1])  # (N, S, width)


def _mqa(x, layer, w, kernels=ops, attention=ops.multi_query_attention):
    """x (N, H, W, C) -> (N, H, W, Cout): project queries, keys, values; attend; project out."""
    n, height, width, _ = x.shape
    q = kernels.pointwise_conv2d(x, w["query_kernel"])  # (N, H, W, heads * d)
    k, v = (_key_value(x, layer, w, part, kernels) for part in KV_PARTS)
    out = attention(q.reshape(n, height * width, -1), k, v, layer.options["heads"])
    out = out.reshape(n, height, width, -1)  # (N, H, W, heads * dv)
    return kernels.pointwise_conv2d(out, w["output_kernel"])


def _mqa_twin(x, layer, w):
    return _mqa(x, layer, w, reference, reference_v4.multi_query_attention)


def _layer_scale(x, layer, w, kernels=ops):
    return kernels.layer_scale(x, w["scale"])


def _normalize(x, layer, w, kernels=ops):
    return kernels.normalize_pixels(x, layer.options["mean"], layer.options["std"])


def _elementwise(function):
    return lambda x, layer, w: function(x)


GELU = register_kind(Kind("gelu", _elementwise(ops.gelu), _elementwise(reference.gelu),
                          fuses="activation"))
LAYER_SCALE = register_kind(Kind(
    "layer_scale", _layer_scale, lambda x, layer, w: _layer_scale(x, layer, w, reference_v4),
    lambda layer: {"scale": (layer.input_shape[-1],)}))
MOBILE_MQA = register_kind(Kind("mobile_mqa", _mqa, _mqa_twin, _mqa_weights, _mqa_macs))
NORMALIZE = register_kind(Kind(
    "normalize_pixels", _normalize, lambda x, layer, w: _normalize(x, layer, w, reference_v4),
    takes_pixels=True))


def attention_probabilities(x: np.ndarray, layer: Layer, w: dict[str, np.ndarray]) -> np.ndarray:
    """The attention weights of an MQA layer on x: (N, heads, L, S), each row summing to 1."""
    n, height, width, _ = x.shape
    heads, d, _ = mqa_widths(layer)
    q = ops.pointwise_conv2d(x, w["query_kernel"]).reshape(n, height * width, heads, d)
    k = _key_value(x, layer, w, "key", ops)
    scores = np.einsum("nlhd,nsd->nhls", q, k) / np.sqrt(d)
    return ops.softmax(scores, axis=-1)
