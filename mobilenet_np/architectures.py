"""MobileNets as data: short tables of rows, expanded into lists of named layers.

The expanded ``Layer`` list is the single source for the forward pass (``model.py``), the
weight names and shapes (``weights.py``) and the cost counters (``cost.py``). Layer names are
Keras's, so they double as weight keys: ``conv_dw_3_bn/gamma``.
"""

from __future__ import annotations

from collections.abc import Callable

from .layers import (
    POOLING_KINDS,
    Layer,
    LayerBuilder,
    check_options,
    conv_bn_relu6,
    correct_pad,
    make_divisible,
)

# MobileNet V1 (Howard et al. 2017, Table 1). Filters are before the width multiplier alpha.
# "conv" is a standard conv + BN + ReLU6; "separable" is depthwise 3x3 + BN + ReLU6 followed
# by pointwise 1x1 + BN + ReLU6.
#            (kind,        kernel, stride, filters)
MOBILENET_V1 = (
    ("conv",      3, 2, 32),
    ("separable", 3, 1, 64),
    ("separable", 3, 2, 128),
    ("separable", 3, 1, 128),
    ("separable", 3, 2, 256),
    ("separable", 3, 1, 256),
    ("separable", 3, 2, 512),
    ("separable", 3, 1, 512),
    ("separable", 3, 1, 512),
    ("separable", 3, 1, 512),
    ("separable", 3, 1, 512),
    ("separable", 3, 1, 512),
    ("separable", 3, 2, 1024),
    ("separable", 3, 1, 1024),
)

def add_top(builder: LayerBuilder, include_top: bool, pooling: str | None,
            add_classifier: Callable[[], None], softmax_name: str) -> None:
    """V1's and V2's ending: average pool, classifier, softmax; or only the optional pooling."""
    if include_top:
        builder.global_pool("global_average_pooling2d", "global_average_pool")
        add_classifier()
        builder.activation(softmax_name, "softmax")
    elif pooling is not None:
        builder.global_pool(f"global_{pooling}_pooling2d", POOLING_KINDS[pooling])


def mobilenet_v1(
    alpha: float = 1.0, resolution: int | tuple[int, int] = 224, depth_multiplier: int = 1,
    include_top: bool = True, pooling: str | None = None, classes: int = 1000,
) -> list[Layer]:
    """Expand ``MOBILENET_V1`` into Keras's layers for a width ``alpha`` and input ``resolution``.

    Stride-2 blocks pad ((0, 1), (0, 1)) explicitly (``conv_pad_N``) then convolve "valid",
    exactly as Keras; the stem ``conv1`` uses TF's "same" rule, again as Keras does.
    """
    height, width = check_options(alpha, resolution, pooling, classes)
    if depth_multiplier < 1:
        raise ValueError(f"depth_multiplier must be >= 1, got {depth_multiplier}")
    builder = LayerBuilder((height, width, 3))
    block = 0
    for kind, kernel, stride, filters in MOBILENET_V1:
        filters = int(filters * alpha)
        if kind == "conv":
            conv_bn_relu6(builder, "conv1", "conv2d", kernel, stride, "same", filters)
            continue
        block += 1
        padding = "same"
        if stride == 2:
            builder.zero_pad(f"conv_pad_{block}", ((0, 1), (0, 1)))
            padding = "valid"
        conv_bn_relu6(builder, f"conv_dw_{block}", "depthwise_conv2d", kernel, stride, padding,
                      0, depth_multiplier)
        conv_bn_relu6(builder, f"conv_pw_{block}", "pointwise_conv2d", 1, 1, "valid", filters)
    add_top(builder, include_top, pooling, lambda: builder.classifier("conv_preds", classes),
            "predictions")
    return builder.layers


# MobileNetV2 (Sandler et al. 2018, Table 2): inverted residual blocks with linear bottlenecks.
# Each row repeats a block n times; only the first of them has the stride. Filters are before
# alpha. A block expands its input t times with a 1x1 conv, filters it with a depthwise 3x3,
# projects back down with a linear 1x1 (no ReLU6), and adds its input when shapes allow.
#            (expansion t, filters c, repeats n, stride s)
MOBILENET_V2 = (
    (1,  16, 1, 1),
    (6,  24, 2, 2),
    (6,  32, 3, 2),
    (6,  64, 4, 2),
    (6,  96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def mobilenet_v2(
    alpha: float = 1.0, resolution: int | tuple[int, int] = 224, include_top: bool = True,
    pooling: str | None = None, classes: int = 1000,
) -> list[Layer]:
    """Expand ``MOBILENET_V2`` into Keras's layers (``Conv1``, ``block_{i}_expand``, ...)."""
    height, width = check_options(alpha, resolution, pooling, classes)
    builder = LayerBuilder((height, width, 3))
    builder.conv("Conv1", "conv2d", 3, 2, "same", make_divisible(32 * alpha))
    builder.batch_norm("bn_Conv1")
    builder.activation("Conv1_relu", "relu6")
    block, block_input = 0, "Conv1_relu"
    for expansion, filters, repeats, first_stride in MOBILENET_V2:
        for repeat in range(repeats):
            stride = first_stride if repeat == 0 else 1
            prefix = f"block_{block}_" if block else "expanded_conv_"
            in_channels = builder.shape[-1]
            if block:  # block 0 has expansion 1 and no expand layer
                builder.conv(f"{prefix}expand", "pointwise_conv2d", 1, 1, "valid",
                             expansion * in_channels)
                builder.batch_norm(f"{prefix}expand_BN")
                builder.activation(f"{prefix}expand_relu", "relu6")
            padding = "same"
            if stride == 2:
                builder.zero_pad(f"{prefix}pad", correct_pad(*builder.shape[:2]))
                padding = "valid"
            conv_bn_relu6(builder, f"{prefix}depthwise", "depthwise_conv2d", 3, stride, padding,
                          0, bn_suffix="_BN")
            out_channels = make_divisible(int(filters * alpha))
            builder.conv(f"{prefix}project", "pointwise_conv2d", 1, 1, "valid", out_channels)
            builder.batch_norm(f"{prefix}project_BN")  # linear bottleneck: no ReLU6 here
            if stride == 1 and in_channels == out_channels:
                builder.add(f"{prefix}add", block_input)
            block_input = builder.layers[-1].name
            block += 1
    last = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    builder.conv("Conv_1", "pointwise_conv2d", 1, 1, "valid", last)
    builder.batch_norm("Conv_1_bn")
    builder.activation("out_relu", "relu6")
    add_top(builder, include_top, pooling, lambda: builder.dense("predictions", classes),
            "predictions_softmax")
    return builder.layers


# MobileNetV3 (Howard et al. 2019, Tables 1 and 2), as Keras builds it. "K" is the large
# kernel (5, or 3 when minimalistic), "SE" a squeeze-and-excite gate (none when minimalistic),
# "HS" hard-swish (ReLU when minimalistic). Filters are before alpha.
#            (expansion, filters, kernel, stride, squeeze-excite, activation)
MOBILENET_V3_LARGE = (
    (1,   16,  3,  1, False, "RE"), (4,   24,  3,  2, False, "RE"), (3,   24,  3,  1, False, "RE"),
    (3,   40, "K", 2, True,  "RE"), (3,   40, "K", 1, True,  "RE"), (3,   40, "K", 1, True,  "RE"),
    (6,   80,  3,  2, False, "HS"), (2.5, 80,  3,  1, False, "HS"), (2.3, 80,  3,  1, False, "HS"),
    (2.3, 80,  3,  1, False, "HS"), (6,  112,  3,  1, True,  "HS"), (6,  112,  3,  1, True,  "HS"),
    (6,  160, "K", 2, True,  "HS"), (6,  160, "K", 1, True,  "HS"), (6,  160, "K", 1, True,  "HS"),
)
MOBILENET_V3_SMALL = (
    (1,     16,  3,  2, True,  "RE"), (72 / 16, 24, 3, 2, False, "RE"),
    (88 / 24, 24, 3,  1, False, "RE"), (4,     40, "K", 2, True, "HS"),
    (6,     40, "K", 1, True,  "HS"), (6,     40, "K", 1, True,  "HS"),
    (3,     48, "K", 1, True,  "HS"), (3,     48, "K", 1, True,  "HS"),
    (6,     96, "K", 2, True,  "HS"), (6,     96, "K", 1, True,  "HS"),
    (6,     96, "K", 1, True,  "HS"),
)
V3_LAST_POINT = {"large": 1280, "small": 1024}  # the 1x1 conv after pooling, before alpha > 1


def _squeeze_excite(builder: LayerBuilder, prefix: str, channels: int) -> None:
    """Pool to (1, 1, C), squeeze to C/4 with ReLU, expand back with a hard-sigmoid gate, and
    multiply the block's activation channel by channel."""
    gated = builder.layers[-1].name
    builder.global_pool(f"{prefix}squeeze_excite_avg_pool", "global_average_pool", keepdims=True)
    builder.conv(f"{prefix}squeeze_excite_conv", "pointwise_conv2d", 1, 1, "valid",
                 make_divisible(channels * 0.25), bias=True)
    builder.activation(f"{prefix}squeeze_excite_relu", "relu")
    builder.conv(f"{prefix}squeeze_excite_conv_1", "pointwise_conv2d", 1, 1, "valid", channels,
                 bias=True)
    builder.activation(f"{prefix}squeeze_excite_hard_sigmoid", "hard_sigmoid")
    builder.multiply(f"{prefix}squeeze_excite_mul", gated)


def mobilenet_v3(
    size: str, alpha: float = 1.0, resolution: int | tuple[int, int] = 224,
    include_top: bool = True, pooling: str | None = None, classes: int = 1000,
    minimalistic: bool = False, include_preprocessing: bool = True,
) -> list[Layer]:
    """Expand ``MOBILENET_V3_LARGE`` or ``_SMALL`` (``size``) into Keras's layers.

    ``include_preprocessing`` starts with Keras's ``Rescaling``: the model then takes pixels
    in [0, 255]. Activation layers get names like ``expanded_conv_3_expand_act``; Keras
    leaves them unnamed, and they hold no weights.
    """
    height, width = check_options(alpha, resolution, pooling, classes)
    large_kernel, use_se = (3, False) if minimalistic else (5, True)
    act = {"RE": "relu", "HS": "relu" if minimalistic else "hard_swish"}
    builder = LayerBuilder((height, width, 3))
    if include_preprocessing:
        builder.activation("rescaling", "rescaling")
    builder.conv("conv", "conv2d", 3, 2, "same", 16)
    builder.batch_norm("conv_bn")
    builder.activation("conv_act", act["HS"])
    rows = MOBILENET_V3_LARGE if size == "large" else MOBILENET_V3_SMALL
    for block, (expansion, filters, kernel, stride, se, activation) in enumerate(rows):
        kernel = large_kernel if kernel == "K" else kernel
        prefix = f"expanded_conv_{block}_" if block else "expanded_conv_"
        block_input, in_channels = builder.layers[-1].name, builder.shape[-1]
        hidden = make_divisible(in_channels * expansion)
        if block:
            builder.conv(f"{prefix}expand", "pointwise_conv2d", 1, 1, "valid", hidden)
            builder.batch_norm(f"{prefix}expand_bn")
            builder.activation(f"{prefix}expand_act", act[activation])
        padding = "same"
        if stride == 2:
            builder.zero_pad(f"{prefix}depthwise_pad", correct_pad(*builder.shape[:2], kernel))
            padding = "valid"
        builder.conv(f"{prefix}depthwise", "depthwise_conv2d", kernel, stride, padding, 0)
        builder.batch_norm(f"{prefix}depthwise_bn")
        builder.activation(f"{prefix}depthwise_act", act[activation])
        if se and use_se:
            _squeeze_excite(builder, prefix, hidden)
        out_channels = make_divisible(filters * alpha)
        builder.conv(f"{prefix}project", "pointwise_conv2d", 1, 1, "valid", out_channels)
        builder.batch_norm(f"{prefix}project_bn")
        if stride == 1 and in_channels == out_channels:
            builder.add(f"{prefix}add", block_input)
    builder.conv("conv_1", "pointwise_conv2d", 1, 1, "valid", make_divisible(builder.shape[-1] * 6))
    builder.batch_norm("conv_1_bn")
    builder.activation("conv_1_act", act["HS"])
    if include_top:
        last_point = V3_LAST_POINT[size]
        last_point = make_divisible(last_point * alpha) if alpha > 1.0 else last_point
        builder.global_pool("global_average_pooling2d", "global_average_pool", keepdims=True)
        builder.conv("conv_2", "pointwise_conv2d", 1, 1, "valid", last_point, bias=True)
        builder.activation("conv_2_act", act["HS"])
        builder.conv("logits", "pointwise_conv2d", 1, 1, "valid", classes, bias=True)
        builder.flatten("flatten")
        builder.activation("predictions", "softmax")
    elif pooling is not None:
        builder.global_pool(f"{pooling}_pool", POOLING_KINDS[pooling])
    return builder.layers


def mobilenet_v3_large(**options) -> list[Layer]:
    return mobilenet_v3("large", **options)


def mobilenet_v3_small(**options) -> list[Layer]:
    return mobilenet_v3("small", **options)


# --arch names -> layer-table builders (keyword arguments: alpha, resolution, include_top,
# pooling, classes, and the family's own: depth_multiplier, minimalistic, ...).
ARCHITECTURES = {"v1": mobilenet_v1, "v2": mobilenet_v2, "v3-large": mobilenet_v3_large,
                 "v3-small": mobilenet_v3_small}
