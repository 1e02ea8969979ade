"""The fused plan as data: the layer table compiled into ``Unit`` records, one per fused step.

``compile_plan`` turns every unit of every block (the layers of one role, see ``layers.py``)
into one ``Unit``: plain data saying what the step computes (``op``), on which weights (batch
norm already folded in), with which pads, stride and activation, and which table layers it
replaces. Every runner reads these records and nothing else: the numpy steps (``fused.py``),
the numba steps (``compiled.py``), int8 lowering (``int8/quantize.py``) and the profiler.

The ops, and the layers each is made of (what joins a unit is said by ``kinds.KINDS``):

- ``conv`` / ``depthwise``: [zero_pad] convolution [batch_norm] [activation], BN folded into
  the kernel and bias, an explicit pad merged into the conv's own;
- ``squeeze_excite``: pool, 1x1 conv, relu, 1x1 conv, hard_sigmoid, multiply: two ``stages``;
- ``add``: the residual connection (``source`` names the earlier output it adds back);
- ``rescale``: MobileNetV3's pixels -> [-1, 1];
- ``head``: global pooling, then every matmul ``stage`` with the activation that follows it
  (the softmax is left to ``predict``);
- ``layers``: any other unit, run layer by layer with the vectorised kernels (a new kind of
  unit works at once, unfused, until it gets an op of its own).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import UnsupportedError
from .kinds import BN_EPSILON, BN_WEIGHTS, KINDS
from .layers import Block, Layer, Params
from .shapes import Pads, resolve_padding

NO_PADS: Pads = ((0, 0), (0, 0))
FUSE_ORDER = {"conv": 0, "batch_norm": 1, "activation": 2}  # a conv unit's layers, in order


@dataclass(frozen=True)
class Stage:
    """One matmul on a pooled vector: (N, Cin) @ matrix (Cin, Cout) + bias, then activation."""

    layer: Layer  # the 1x1 conv, classifier or dense layer
    matrix: np.ndarray  # (Cin, Cout)
    bias: np.ndarray  # (Cout,)
    activation: str | None  # the activation kind that follows it, or None
    output: str  # the layer whose output the stage produces (its activation's, if any)


@dataclass(frozen=True)
class Unit:
    """One fused step as plain data."""

    op: str  # conv | depthwise | squeeze_excite | add | rescale | head | layers
    covers: tuple[Layer, ...]  # the table layers it replaces, in order
    source: str | None = None  # add: the earlier output it adds back
    kernel: np.ndarray | None = None  # BN folded: conv (kh, kw, Cin, Cout), depthwise (kh, kw, C, M)
    bias: np.ndarray | None = None  # (Cout,)
    stride: int = 1
    pads: Pads = NO_PADS  # ((top, bottom), (left, right)), explicit
    activation: str | None = None  # the activation kind applied to the sum, or None (linear)
    stages: tuple[Stage, ...] = ()  # squeeze_excite and head
    pool: str = "avg"  # head: "avg" or "max"
    weights: dict | None = None  # layers: {layer name: {weight name: array}}

    @property
    def name(self) -> str:
        """The layer whose output this unit produces (the interpreter saves outputs by it)."""
        return self.covers[-1].name

    @property
    def conv(self) -> Layer:
        """conv / depthwise: the convolution layer itself (not its zero_pad)."""
        return next(layer for layer in self.covers if KINDS[layer.kind].fuses == "conv")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.covers[0].input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.covers[-1].output_shape


def compile_plan(blocks: list[Block], params: Params) -> list[Unit]:
    """One ``Unit`` per unit of every block, in order."""
    return [UNIT_RULES.get(role, layers_unit)(layers, params)
            for block in blocks for role, layers in block.units()]


def fold_batch_norm(
    kernel: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
    variance: np.ndarray, epsilon: float = BN_EPSILON, depthwise: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Fold inference BN into the preceding conv: returns (kernel * s, beta - mean * s).

    At inference BN is a per-channel affine map and a convolution is linear, so for output
    channel o: BN(conv(x, W))[o] = conv(x, W * s)[o] + (beta[o] - mean[o] * s[o]) with
    s = gamma / sqrt(var + eps). kernel (..., Cout) for standard/pointwise; for depthwise
    (kh, kw, C, M) the BN channel of output c * M + m scales ``kernel[..., c, m]``. Computed in
    float64, returned as float32.
    """
    scale = gamma.astype(np.float64) / np.sqrt(variance.astype(np.float64) + epsilon)  # (Cout,)
    per_weight = scale.reshape(kernel.shape[-2:]) if depthwise else scale  # (C, M) or (Cout,)
    folded = kernel.astype(np.float64) * per_weight
    bias = beta.astype(np.float64) - mean.astype(np.float64) * scale
    return folded.astype(np.float32), bias.astype(np.float32)


def _kinds(layers: tuple[Layer, ...]) -> list[str]:
    return [layer.kind for layer in layers]


def _weights(layer: Layer, params: Params) -> dict[str, np.ndarray]:
    return {name: params[f"{layer.name}/{name}"] for name in layer.weights}


def conv_unit(layers: tuple[Layer, ...], params: Params) -> Unit:
    """[zero_pad] conv [batch_norm] [activation] -> one conv or depthwise unit, BN folded in."""
    start = 1 if KINDS[layers[0].kind].fuses == "pad" else 0
    ranks = [FUSE_ORDER.get(KINDS[layer.kind].fuses, -1) for layer in layers[start:]]
    if ranks[:1] != [0] or ranks != sorted(set(ranks)):  # conv first, then each at most once
        raise UnsupportedError(f"the fused path runs a conv unit as [zero_pad] conv [batch_norm] "
                               f"[activation], not {_kinds(layers)} ({layers[0].name})")
    conv, rest = layers[start], layers[start + 1:]
    weights = _weights(conv, params)
    depthwise = conv.kind == "depthwise_conv2d"
    kernel = weights["depthwise_kernel" if depthwise else "kernel"]
    bias = weights.get("bias", np.zeros(conv.output_shape[-1], np.float32))
    for bn in (layer for layer in rest if layer.kind == "batch_norm"):
        gamma, beta, mean, variance = (params[f"{bn.name}/{w}"] for w in BN_WEIGHTS)
        # BN(conv + b) = BN with its mean moved by -b, applied to conv: the bias folds in too
        kernel, bias = fold_batch_norm(kernel, gamma, beta, mean - bias, variance,
                                       bn.options.get("epsilon", BN_EPSILON), depthwise)
    activation = next((layer.kind for layer in rest if KINDS[layer.kind].fuses == "activation"),
                      None)
    pads = _own_pads(conv)
    if start:  # an explicit zero_pad followed by the conv's own padding is one padding
        pads = tuple((a + c, b + d) for (a, b), (c, d) in zip(layers[0].padding, pads, strict=True))
    return Unit("depthwise" if depthwise else "conv", layers, kernel=kernel, bias=bias,
                stride=conv.stride, pads=pads, activation=activation)


def _own_pads(layer: Layer) -> Pads:
    return resolve_padding(layer.padding, layer.input_shape[:2], (layer.kernel, layer.kernel),
                           (layer.stride, layer.stride), layer.name)


def _stage(layer: Layer, params: Params, *followers: Layer) -> Stage:
    """A 1x1 conv, classifier or dense layer as a matmul stage, with the batch norm (folded
    in: MobileNetV4's head) and the activation that follow it."""
    kernel = params[f"{layer.name}/kernel"]
    matrix = kernel.reshape(-1, kernel.shape[-1])  # (Cin, Cout)
    bias = params.get(f"{layer.name}/bias", np.zeros(matrix.shape[1], np.float32))
    output = layer.name
    if followers and followers[0].kind == "batch_norm":
        bn, *followers = followers
        gamma, beta, mean, variance = (params[f"{bn.name}/{w}"] for w in BN_WEIGHTS)
        matrix, bias = fold_batch_norm(matrix, gamma, beta, mean - bias, variance,
                                       bn.options.get("epsilon", BN_EPSILON))
        output = bn.name
    fused = bool(followers) and KINDS[followers[0].kind].fuses == "activation"
    return Stage(layer, matrix, bias, followers[0].kind if fused else None,
                 followers[0].name if fused else output)


def squeeze_excite_unit(layers: tuple[Layer, ...], params: Params) -> Unit:
    """pool, conv, relu, conv, hard_sigmoid, multiply -> one unit with two stages."""
    expected = ["global_average_pool", "pointwise_conv2d", "relu", "pointwise_conv2d",
                "hard_sigmoid", "multiply"]
    if _kinds(layers) != expected:
        raise UnsupportedError(f"the fused path knows squeeze-excite as {expected}, got "
                               f"{_kinds(layers)}")
    return Unit("squeeze_excite", layers, stages=(_stage(layers[1], params, layers[2]),
                                                  _stage(layers[3], params, layers[4])))


def head_unit(layers: tuple[Layer, ...], params: Params) -> Unit:
    """Pooling, then every matmul stage with the activation that follows it (softmax is left to
    ``predict``, flatten is free on the pooled vector)."""
    pool, *rest = layers
    if pool.kind not in ("global_average_pool", "global_max_pool"):
        raise UnsupportedError(f"the fused path's head starts with global pooling, not {pool.kind}")
    stages = []
    for i, layer in enumerate(rest):
        if KINDS[layer.kind].macs is not None:
            stages.append(_stage(layer, params, *rest[i + 1:i + 3]))
        elif KINDS[layer.kind].fuses not in ("activation", "batch_norm") \
                and layer.kind not in ("flatten", "softmax"):
            raise UnsupportedError(f"the fused path's head has no stage for {layer.kind} "
                                   f"({layer.name})")
    return Unit("head", layers, stages=tuple(stages),
                pool="avg" if pool.kind == "global_average_pool" else "max")


def layers_unit(layers: tuple[Layer, ...], params: Params) -> Unit:
    """Any other unit: its layers, run one by one with the vectorised kernels."""
    outside = {layer.source for layer in layers if layer.source} - {layer.name for layer in layers}
    if len(outside) > 1:
        raise UnsupportedError(f"a unit that joins {len(outside)} earlier outputs "
                               f"({', '.join(sorted(outside))}): split it into units")
    return Unit("layers", layers, source=next(iter(outside), None),
                weights={layer.name: _weights(layer, params) for layer in layers})


# The rule of the fused path: which unit each role compiles to (others: ``layers_unit``).
UNIT_RULES: dict[str, Callable[[tuple[Layer, ...], Params], Unit]] = {
    **{role: conv_unit for role in ("conv", "expand", "depthwise", "pointwise", "project",
                                    "dw_start", "dw_end")},  # V4's UIB: depthwise + BN, folded
    "squeeze_excite": squeeze_excite_unit,
    "residual": lambda layers, params: Unit("add", layers, source=layers[0].source),
    "rescaling": lambda layers, params: Unit("rescale", layers),
    "top": head_unit,
}
