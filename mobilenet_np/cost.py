"""Parameter and multiply-accumulate counts, read off the same layer table the forward pass runs.

Convention, stated once: one multiply-add = 1 MAC, and FLOPs = 2 x MACs. MACs count the
convolutions and the classifier only (as the MobileNet paper and TF-slim do); bias adds, batch
norm, ReLU6, padding and pooling are elementwise work, reported apart as ``elementwise``
(one per output element they produce), never folded into MACs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .kinds import KINDS
from .layers import MIXING_ROLES, Block, Layer


@dataclass(frozen=True)
class LayerCost:
    """What one layer costs: parameters (split three ways) and MACs."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    weights: int  # conv kernels, classifier kernel and bias
    bn_trainable: int  # gamma and beta
    bn_statistics: int  # moving mean and variance (not trainable)
    macs: int
    elementwise: int  # outputs of BN / ReLU6 / padding / pooling / softmax

    @property
    def params(self) -> int:
        return self.weights + self.bn_trainable + self.bn_statistics


def layer_macs(layer: Layer) -> int:
    """Multiply-adds of one layer, as its kind counts them (``kinds.KINDS``): conv2d
    Ho*Wo*k*k*Cin*Cout, depthwise Ho*Wo*k*k*C*M, pointwise H*W*Cin*Cout, classifier and dense
    C*classes. Everything else (residual adds too): 0."""
    macs = KINDS[layer.kind].macs
    return 0 if macs is None else macs(layer)


def layer_cost(layer: Layer) -> LayerCost:
    """Parameters and MACs of one layer."""
    sizes = {name: int(math.prod(shape)) for name, shape in layer.weights.items()}
    # by suffix: V4's attention layer holds its own BNs ("key_down_gamma", ...)
    bn_trainable = sum(size for name, size in sizes.items() if name.endswith(("gamma", "beta")))
    bn_statistics = sum(size for name, size in sizes.items()
                        if name.endswith(("moving_mean", "moving_variance")))
    weights = sum(sizes.values()) - bn_trainable - bn_statistics
    elementwise = 0 if KINDS[layer.kind].macs else int(math.prod(layer.output_shape))
    return LayerCost(layer.name, layer.kind, layer.output_shape, weights, bn_trainable,
                     bn_statistics, layer_macs(layer), elementwise)


def network_cost(layers: list[Layer]) -> dict:
    """Per-layer costs and totals: ``{"layers", "total_params", "trainable_params",
    "conv_weights", "total_macs", "elementwise"}`` (all integers)."""
    costs = [layer_cost(layer) for layer in layers]
    return {
        "layers": costs,
        "total_params": sum(c.params for c in costs),
        "trainable_params": sum(c.weights + c.bn_trainable for c in costs),
        "conv_weights": sum(c.weights for c in costs if c.kind != "classifier"),
        "total_macs": sum(c.macs for c in costs),
        "elementwise": sum(c.elementwise for c in costs),
    }


@dataclass(frozen=True)
class SeparableVsStandard:
    """One block's depthwise + 1x1 projection beside the standard conv they factorise (paper 3.1).

    The standard conv maps the depthwise's input (M channels) to the projection's output (N
    channels) with the depthwise's kernel and stride. An inverted residual's expansion and
    squeeze-and-excite are not part of the factorisation, and are left out on both sides.
    """

    block: str  # the block's name, e.g. "block_3"
    name: str  # its depthwise layer's name
    kernel: int  # Dk
    in_channels: int  # M
    out_channels: int  # N
    depth_multiplier: int  # m, 1 in every published MobileNet
    size: tuple[int, int]  # Df x Df, the output feature map
    standard_macs: int  # Dk*Dk*M*N*Df*Df
    separable_macs: int  # Dk*Dk*M*m*Df*Df + M*m*N*Df*Df
    standard_params: int  # Dk*Dk*M*N
    separable_params: int  # Dk*Dk*M*m + M*m*N

    @property
    def mac_fraction(self) -> float:
        """separable / standard; equals ``closed_form`` exactly."""
        return self.separable_macs / self.standard_macs

    @property
    def closed_form(self) -> float:
        """m * (1/N + 1/Dk^2): the paper's 1/N + 1/Dk^2 at depth multiplier m = 1."""
        return self.depth_multiplier * (1 / self.out_channels + 1 / self.kernel**2)


def separable_blocks(blocks: list[Block]) -> list[SeparableVsStandard]:
    """Every block that has a depthwise conv and a 1x1 projection after it, compared."""
    pairs = []
    for block in blocks:
        depthwise, mixing = block.conv("depthwise"), block.conv(*MIXING_ROLES)
        if depthwise is None or mixing is None:
            continue
        k, m, n = depthwise.kernel, depthwise.input_shape[-1], mixing.output_shape[-1]
        multiplier = depthwise.weights["depthwise_kernel"][-1]
        height, width = depthwise.output_shape[:2]
        pairs.append(SeparableVsStandard(
            block.name, depthwise.name, k, m, n, multiplier, (height, width),
            standard_macs=k * k * m * n * height * width,
            separable_macs=layer_macs(depthwise) + layer_macs(mixing),
            standard_params=k * k * m * n,
            separable_params=int(math.prod(depthwise.weights["depthwise_kernel"]))
            + int(math.prod(mixing.weights["kernel"])),
        ))
    return pairs


def unpaired_depthwise(blocks: list[Block]) -> list[str]:
    """The depthwise convs in no pair of ``separable_blocks``: no 1x1 conv after them in their
    block (a home-made graph's depthwise before a pooling), or their block's pair is another
    depthwise (MobileNetV4's extra depthwise convs)."""
    paired = {pair.name for pair in separable_blocks(blocks)}
    return [layer.name for block in blocks for layer in block.layers
            if layer.kind == "depthwise_conv2d" and layer.name not in paired]


def conv_mobilenet_cost(blocks: list[Block]) -> dict:
    """The paper's "Conv MobileNet" (Table 4): every separable pair replaced by a full conv.

    Counts conv/classifier weights and MACs of the whole network (stem and classifier
    included); the batch norms of the replaced blocks are left out (the paper's 29.3M counts
    weights only; MobileNet's BN adds only 0.04M anyway).
    """
    base = network_cost([layer for block in blocks for layer in block.layers])
    pairs = separable_blocks(blocks)
    macs = base["total_macs"] - sum(b.separable_macs - b.standard_macs for b in pairs)
    weights = sum(c.weights for c in base["layers"]) - sum(
        b.separable_params - b.standard_params for b in pairs)
    return {"total_macs": macs, "weights": weights}


def share_by_type(layers: list[Layer]) -> dict[str, dict[str, float]]:
    """Fractions of MACs and of weights by layer type, as the paper's Table 2 groups them."""
    groups = {"conv2d": "Conv 3x3 (stem)", "depthwise_conv2d": "Conv DW 3x3",
              "pointwise_conv2d": "Conv 1x1", "classifier": "Fully connected"}
    cost = network_cost(layers)
    total_macs = cost["total_macs"]
    total_weights = sum(c.weights for c in cost["layers"])
    shares = {label: {"macs": 0.0, "params": 0.0} for label in groups.values()}
    for c in cost["layers"]:
        if c.kind in groups:
            shares[groups[c.kind]]["macs"] += c.macs / total_macs
            shares[groups[c.kind]]["params"] += c.weights / total_weights
    return shares
