"""Block builders shared by the families: a conv unit, the inverted residual, squeeze-and-excite.

MobileNetV2 and V3 build their bodies with the same ``inverted_residual``; they differ only in
their rows (expansion, kernel, activation, SE) and in how Keras names the layers
(``ConvNames``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .layers import POOLING_KINDS, LayerBuilder, Pads, correct_pad, make_divisible


@dataclass(frozen=True)
class ConvNames:
    """How a family's Keras model names the layers after a conv: ``conv + bn``, ``conv + act``."""

    bn: str  # "_bn" (V1, V3) or "_BN" (V2)
    act: str  # "_relu" (V1, V2) or "_act" (V3; Keras leaves these unnamed, they hold no weights)
    pad: str = "pad"  # an inverted residual's stride-2 zero padding: "pad" (V2), "depthwise_pad" (V3)


def conv_unit(builder: LayerBuilder, role: str, name: str, kind: str, kernel: int, stride: int,
              filters: int, activation: str | None, names: ConvNames, *,
              pad: tuple[str, Pads] | None = None, depth_multiplier: int = 1,
              bn_name: str | None = None, act_name: str | None = None) -> None:
    """[zero_pad] -> conv -> batch norm -> [activation]: the unit every MobileNet layer is made of.

    ``pad`` = (name, pads) pads explicitly and convolves "valid" (Keras's stride-2 blocks);
    otherwise the conv uses TF's "same" rule. ``activation`` None is a linear bottleneck.
    """
    with builder.unit(role):
        if pad is not None:
            builder.zero_pad(*pad)
        builder.conv(name, kind, kernel, stride, "valid" if pad else "same", filters,
                     depth_multiplier)
        builder.batch_norm(bn_name or name + names.bn)
        if activation is not None:
            builder.activation(act_name or name + names.act, activation)


def inverted_residual(builder: LayerBuilder, prefix: str, names: ConvNames, expand_to: int | None,
                      kernel: int, stride: int, filters: int, activation: str,
                      squeeze_to: int | None = None) -> None:
    """MobileNetV2's block, also V3's: expand, filter, (squeeze-excite), project, add.

    1x1 expansion to ``expand_to`` channels (none for a family's first block) + activation;
    depthwise ``kernel`` x ``kernel`` + activation; squeeze-and-excite down to ``squeeze_to``
    channels if given; a *linear* 1x1 projection to ``filters``; and the block's input added back
    when the shapes allow (stride 1, same channels).
    """
    block_input, in_channels = builder.layers[-1].name, builder.shape[-1]
    if expand_to:
        conv_unit(builder, "expand", f"{prefix}expand", "pointwise_conv2d", 1, 1, expand_to,
                  activation, names)
    pad = (f"{prefix}{names.pad}", correct_pad(*builder.shape[:2], kernel)) if stride == 2 else None
    conv_unit(builder, "depthwise", f"{prefix}depthwise", "depthwise_conv2d", kernel, stride, 0,
              activation, names, pad=pad)
    if squeeze_to:
        squeeze_excite(builder, prefix, squeeze_to)
    conv_unit(builder, "project", f"{prefix}project", "pointwise_conv2d", 1, 1, filters, None,
              names)  # linear bottleneck: no activation after the projection
    if stride == 1 and in_channels == filters:
        with builder.unit("residual"):
            builder.add(f"{prefix}add", block_input)


def squeeze_excite(builder: LayerBuilder, prefix: str, squeeze_to: int) -> None:
    """Pool to (1, 1, C), squeeze to ``squeeze_to`` channels with ReLU, expand back to C with a
    hard-sigmoid gate, and multiply the block's activation channel by channel."""
    gated, channels = builder.layers[-1].name, builder.shape[-1]
    with builder.unit("squeeze_excite"):
        builder.global_pool(f"{prefix}squeeze_excite_avg_pool", "global_average_pool",
                            keepdims=True)
        builder.conv(f"{prefix}squeeze_excite_conv", "pointwise_conv2d", 1, 1, "valid",
                     squeeze_to, bias=True)
        builder.activation(f"{prefix}squeeze_excite_relu", "relu")
        builder.conv(f"{prefix}squeeze_excite_conv_1", "pointwise_conv2d", 1, 1, "valid",
                     channels, bias=True)
        builder.activation(f"{prefix}squeeze_excite_hard_sigmoid", "hard_sigmoid")
        builder.multiply(f"{prefix}squeeze_excite_mul", gated)


def se_channels(channels: int, ratio: float = 0.25) -> int:
    """Squeeze-and-excite's bottleneck width, as Keras rounds it."""
    return make_divisible(channels * ratio)


def classifier_top(builder: LayerBuilder, include_top: bool, pooling: str | None,
                   add_classifier: Callable[[], None], softmax_name: str) -> None:
    """V1's and V2's ending: average pool, classifier, softmax; or only the optional pooling."""
    with builder.unit("top"):
        if include_top:
            builder.global_pool("global_average_pooling2d", "global_average_pool")
            add_classifier()
            builder.activation(softmax_name, "softmax")
        elif pooling is not None:
            builder.global_pool(f"global_{pooling}_pooling2d", POOLING_KINDS[pooling])
