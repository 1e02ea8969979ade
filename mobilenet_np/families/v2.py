"""MobileNetV2 (Sandler et al. 2018): inverted residuals with linear bottlenecks."""

from __future__ import annotations

from ..blocks import ConvNames, classifier_top, conv_unit, inverted_residual
from ..layers import Block, LayerBuilder, check_options, make_divisible
from ..registry import Family, Published, WeightFiles, register
from ..stored import Stored, kernel_shape, published_width, top_options

# The paper's Table 2. Each row repeats a block n times; only the first of them has the stride.
# Filters are before alpha. A block expands its input t times with a 1x1 conv, filters it with
# a depthwise 3x3, projects back down with a linear 1x1, and adds its input when shapes allow.
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
NAMES = ConvNames(bn="_BN", act="_relu", pad="pad")  # block_3_expand -> _expand_BN, _expand_relu


def build(alpha: float, resolution: int | tuple[int, int], include_top: bool,
          pooling: str | None, classes: int) -> list[Block]:
    """Expand ``MOBILENET_V2`` into Keras's layers (``Conv1``, ``block_{i}_expand``, ...)."""
    height, width = check_options(alpha, resolution, pooling, classes)
    builder = LayerBuilder((height, width, 3))
    with builder.block("stem", "stem"):
        conv_unit(builder, "conv", "Conv1", "conv2d", 3, 2, make_divisible(32 * alpha), "relu6",
                  NAMES, bn_name="bn_Conv1")
    block = 0
    for expansion, filters, repeats, first_stride in MOBILENET_V2:
        for repeat in range(repeats):
            # Keras's first block has no expand layer (t = 1) and another prefix.
            prefix = f"block_{block}_" if block else "expanded_conv_"
            expand_to = expansion * builder.shape[-1] if block else None
            with builder.block(f"block_{block}", "inverted_residual"):
                inverted_residual(builder, prefix, NAMES, expand_to, 3,
                                  first_stride if repeat == 0 else 1,
                                  make_divisible(int(filters * alpha)), "relu6")
            block += 1
    with builder.block("head", "head"):
        conv_unit(builder, "conv", "Conv_1", "pointwise_conv2d", 1, 1,
                  make_divisible(1280 * alpha) if alpha > 1.0 else 1280, "relu6", NAMES,
                  bn_name="Conv_1_bn", act_name="out_relu")
        classifier_top(builder, include_top, pooling,
                       lambda: builder.dense("predictions", classes), "predictions_softmax")
    return builder.blocks


ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


def file_name(alpha: float, resolution: int, include_top: bool) -> str:
    """e.g. ``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5``."""
    suffix = "" if include_top else "_no_top"
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{resolution}{suffix}.h5"


def recognise(stored: Stored) -> dict | None:
    """alpha: the published width whose rounded 320 * alpha is block_16_project's filters."""
    last = kernel_shape(stored, "block_16_project")
    if last is None:
        return None
    alpha = published_width(last[-1], 320, ALPHAS, lambda v: make_divisible(int(v)))
    return {"alpha": alpha, **top_options(stored, "predictions")}


SLIM = "TF-slim mobilenet/README.md"
V2 = register(Family(
    name="v2", title="MobileNetV2", build=build, options={},
    weight_files=WeightFiles(
        folder="https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/",
        alphas=ALPHAS, resolutions=(96, 128, 160, 192, 224), name=file_name),
    recognise=recognise,
    preprocessing="values in [-1, 1]: preprocess_input(pixels) = pixels / 127.5 - 1",
    published=(Published("MobileNetV2 1.0", {}, 71.8, 300, 3.47, SLIM),
               Published("MobileNetV2 1.4", {"alpha": 1.4}, 75.0, 582, 6.06, SLIM),
               Published("MobileNetV2 0.35", {"alpha": 0.35}, 60.3, 59, 1.66, SLIM)),
))
