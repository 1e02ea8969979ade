"""The layer kinds: one record per kind, the one place a kind is described.

A ``Kind`` says everything the package knows about one kind of layer: its vectorised kernel
(``ops.py``, what ``forward`` runs), its loop twin (``reference.py``), the names and shapes of
its weights (Keras's, so that layer name + weight name is the key in every file), how many
multiply-adds it costs, how it joins a fused unit, and which Keras class stores it. The
builder, the readable forward pass, the cost counters, the weight readers and the fused plan
all read this table; none of them lists kinds of its own. Adding a kind is one ``Kind`` here
(plus its kernel in ``ops.py`` and its twin in ``reference.py``): see ``register_kind``.

Each kernel is ``run(x, layer, weights)`` with x (N, H, W, C) or (N, C) and ``weights`` the
layer's arrays by weight name; a kind that ``joins`` an earlier output (a residual add, the
squeeze-excite multiply) is ``run(x, earlier)`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from . import ops, reference
from .errors import UnsupportedError


class Layer(Protocol):
    """What a kind reads of a layer (``layers.Layer``, which is built with this table)."""

    kind: str
    input_shape: tuple[int, ...]  # (H, W, C), or (C,) after pooling
    output_shape: tuple[int, ...]
    kernel: int
    stride: int
    padding: str | tuple[tuple[int, int], tuple[int, int]]
    options: dict

Weights = dict[str, np.ndarray]
Kernel = Callable[..., np.ndarray]  # run(x, layer, weights), or run(x, earlier) for joins
BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")  # Keras's order
BN_EPSILON = 1e-3  # Keras's default; a layer's options may say otherwise (PyTorch: 1e-5)


@dataclass(frozen=True)
class Kind:
    """One kind of layer, described once."""

    name: str
    run: Kernel  # the vectorised kernel (ops.py tier)
    twin: Kernel  # the loop twin (reference.py tier); the same function where there is no loop
    # Layer -> {weight name: shape}, in Keras's order; kinds without weights return {}
    weights: Callable[[Layer], dict[str, tuple[int, ...]]] = lambda layer: {}
    macs: Callable[[Layer], int] | None = None  # multiply-adds; None: elementwise work, no MACs
    # How it joins a fused conv unit: "conv" (the unit's convolution), "batch_norm" (folded
    # into it), "activation" (applied in place to its output), "pad" (merged into its pads),
    # or "" (it does not: it runs in a unit of its own role)
    fuses: str = ""
    keras_class: str | None = None  # the Keras class that stores its weights (Keras 3 files)
    joins: bool = False  # combines x with the earlier output named by ``layer.source``
    # a model starting with it takes 0-255 pixels (it scales them itself): Keras's Rescaling
    takes_pixels: bool = False


def run_layer(layer: Layer, x: np.ndarray, weights: Weights, earlier: np.ndarray | None = None,
              twin: bool = False) -> np.ndarray:
    """One layer on x: its vectorised kernel, or its loop twin (``twin=True``)."""
    kind = KINDS[layer.kind]
    kernel = kind.twin if twin else kind.run
    return kernel(x, earlier) if kind.joins else kernel(x, layer, weights)


# Weight shapes (no batch axis). Every convolution kernel is (kh, kw, Cin, Cout), TF's layout.
def _conv_weights(layer: Layer) -> dict[str, tuple[int, ...]]:
    k, cin, cout = layer.kernel, layer.input_shape[-1], layer.output_shape[-1]
    return {"kernel": (k, k, cin, cout), **_bias(layer, cout)}


def _depthwise_weights(layer: Layer) -> dict[str, tuple[int, ...]]:
    k, channels = layer.kernel, layer.input_shape[-1]
    # A 0-channel layer (an alpha too thin) has no multiplier to read; checks.py refuses it.
    multiplier = layer.output_shape[-1] // channels if channels else 1
    return {"depthwise_kernel": (k, k, channels, multiplier), **_bias(layer, channels * multiplier)}


def _dense_weights(layer: Layer) -> dict[str, tuple[int, ...]]:
    cin, cout = layer.input_shape[-1], layer.output_shape[-1]
    kernel = (1, 1, cin, cout) if layer.kind == "classifier" else (cin, cout)
    return {"kernel": kernel, "bias": (cout,)}


def _bias(layer: Layer, channels: int) -> dict[str, tuple[int, ...]]:
    return {"bias": (channels,)} if layer.options.get("bias") else {}


def _bn_weights(layer: Layer) -> dict[str, tuple[int, ...]]:
    return {name: (layer.input_shape[-1],) for name in BN_WEIGHTS}


# Multiply-adds: every output element of a convolution sums kh * kw * (inputs per output).
def _conv_macs(layer: Layer) -> int:
    """Ho*Wo*Cout*kh*kw*Cin: conv2d and 1x1 (Cin products per output), depthwise (1 per tap)."""
    per_output = layer.kernel**2 * (1 if layer.kind == "depthwise_conv2d" else layer.input_shape[-1])
    return int(math.prod(layer.output_shape)) * per_output


def _dense_macs(layer: Layer) -> int:
    """Cin * Cout: one product per input per class."""
    return layer.input_shape[-1] * layer.output_shape[-1]


def _conv(x, layer, w, kernels=ops):
    return kernels.conv2d(x, w["kernel"], w.get("bias"), stride=layer.stride, padding=layer.padding)


def _pointwise(x, layer, w, kernels=ops):
    return kernels.pointwise_conv2d(x, w["kernel"], w.get("bias"))


def _depthwise(x, layer, w, kernels=ops):
    return kernels.depthwise_conv2d(x, w["depthwise_kernel"], w.get("bias"), stride=layer.stride,
                                    padding=layer.padding)


def _batch_norm(x, layer, w, kernels=ops):
    return kernels.batch_norm(x, *(w[name] for name in BN_WEIGHTS),
                              epsilon=layer.options.get("epsilon", BN_EPSILON))


def _global_pool(average: bool, kernels) -> Kernel:
    """(N, H, W, C) -> (N, C), or (N, 1, 1, C) when the layer keeps the dims (to feed 1x1 convs)."""
    pool = kernels.global_average_pool if average else kernels.global_max_pool

    def run(x, layer, w):
        out = pool(x)  # (N, C)
        return out.reshape(len(out), *layer.output_shape)
    return run


def _dense(x, layer, w, kernels=ops):
    """(N, C) @ (C, classes) + bias; Keras's classifier is the same as a (1, 1, C, classes) conv."""
    return kernels.dense(x, w["kernel"].reshape(-1, w["kernel"].shape[-1]), w["bias"])


def _elementwise(function: Callable[[np.ndarray], np.ndarray]) -> Kernel:
    return lambda x, layer, w: function(x)


def _twin(kernel: Kernel) -> Kernel:
    """The same kernel, calling ``reference.py``'s loops instead of ``ops.py``'s."""
    return lambda x, layer, w: kernel(x, layer, w, kernels=reference)


def _activation(name: str) -> Kind:
    return Kind(name, _elementwise(getattr(ops, name)), _elementwise(getattr(reference, name)),
                fuses="activation")


def _flatten(x, layer, w):
    return x.reshape(len(x), -1)  # (N, 1, 1, C) -> (N, C): no arithmetic, its own twin


def _zero_pad(x, layer, w, kernels=ops):
    return kernels.zero_pad(x, layer.padding)


KINDS: dict[str, Kind] = {}


def register_kind(kind: Kind) -> Kind:
    """Add a kind to the table (its name must be new)."""
    if kind.name in KINDS:
        raise UnsupportedError(f"a layer kind named {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    return kind


for _kind in (
    Kind("conv2d", _conv, _twin(_conv), _conv_weights, _conv_macs, "conv", "conv2d"),
    Kind("depthwise_conv2d", _depthwise, _twin(_depthwise), _depthwise_weights, _conv_macs,
         "conv", "depthwise_conv2d"),
    Kind("pointwise_conv2d", _pointwise, _twin(_pointwise), _conv_weights, _conv_macs, "conv",
         "conv2d"),
    Kind("batch_norm", _batch_norm, _twin(_batch_norm), _bn_weights, fuses="batch_norm",
         keras_class="batch_normalization"),
    *(_activation(name) for name in ("relu", "relu6", "hard_sigmoid", "hard_swish")),
    Kind("zero_pad", _zero_pad, _twin(_zero_pad), fuses="pad"),
    Kind("rescaling", _elementwise(ops.rescale_pixels), _elementwise(reference.rescale_pixels),
         takes_pixels=True),
    Kind("global_average_pool", _global_pool(True, ops), _global_pool(True, reference)),
    Kind("global_max_pool", _global_pool(False, ops), _global_pool(False, reference)),
    Kind("flatten", _flatten, _flatten),
    Kind("classifier", _dense, _twin(_dense), _dense_weights, _dense_macs, keras_class="conv2d"),
    Kind("dense", _dense, _twin(_dense), _dense_weights, _dense_macs, keras_class="dense"),
    Kind("softmax", _elementwise(ops.softmax), _elementwise(reference.softmax)),
    Kind("add", ops.add, reference.add, joins=True),
    Kind("multiply", ops.multiply, reference.multiply, joins=True),
):
    register_kind(_kind)
