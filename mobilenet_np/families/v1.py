"""MobileNet V1 (Howard et al. 2017): the table, Keras's names and files, the published numbers.

Sources of the quoted numbers: the paper, "MobileNets: Efficient Convolutional Neural Networks
for Mobile Vision Applications", arXiv:1704.04861, Tables 2, 4, 6 and 7; and TF-slim's
``research/slim/nets/mobilenet_v1.md`` (tensorflow/models), whose checkpoints have 1001
classes (a "background" class first).
"""

from __future__ import annotations

from ..blocks import ConvNames, classifier_top, conv_unit
from ..errors import InputError, UnsupportedError
from ..layers import Block, LayerBuilder, check_options
from ..registry import Family, Option, Published, WeightFiles, register
from ..stored import Stored, kernel_shape, top_options

# Table 1 of the paper. Filters are before the width multiplier alpha. "conv" is a standard
# conv + BN + ReLU6; "separable" is depthwise 3x3 + BN + ReLU6, then pointwise 1x1 + BN + ReLU6.
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
NAMES = ConvNames(bn="_bn", act="_relu")  # conv_dw_3 -> conv_dw_3_bn, conv_dw_3_relu


def build(alpha: float, resolution: int | tuple[int, int], include_top: bool,
          pooling: str | None, classes: int, depth_multiplier: int) -> list[Block]:
    """Expand ``MOBILENET_V1`` into Keras's layers for a width ``alpha`` and input ``resolution``.

    Stride-2 blocks pad ((0, 1), (0, 1)) explicitly (``conv_pad_N``) then convolve "valid",
    exactly as Keras; the stem ``conv1`` uses TF's "same" rule, again as Keras does.
    """
    height, width = check_options(alpha, resolution, pooling, classes)
    if not isinstance(depth_multiplier, int) or depth_multiplier < 1:
        raise InputError(f"depth_multiplier must be an integer >= 1, got {depth_multiplier!r}")
    builder = LayerBuilder((height, width, 3))
    (_, kernel, stride, filters), *rows = MOBILENET_V1
    with builder.block("stem", "stem"):
        conv_unit(builder, "conv", "conv1", "conv2d", kernel, stride, int(filters * alpha),
                  "relu6", NAMES)
    for block, (_, kernel, stride, filters) in enumerate(rows, 1):
        pad = (f"conv_pad_{block}", ((0, 1), (0, 1))) if stride == 2 else None
        with builder.block(f"block_{block}", "separable"):
            conv_unit(builder, "depthwise", f"conv_dw_{block}", "depthwise_conv2d", kernel,
                      stride, 0, "relu6", NAMES, pad=pad, depth_multiplier=depth_multiplier)
            conv_unit(builder, "pointwise", f"conv_pw_{block}", "pointwise_conv2d", 1, 1,
                      int(filters * alpha), "relu6", NAMES)
    with builder.block("head", "head"):
        classifier_top(builder, include_top, pooling,
                       lambda: builder.classifier("conv_preds", classes), "predictions")
    return builder.blocks


ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}  # as in Keras's file names


def file_name(alpha: float, resolution: int, include_top: bool, depth_multiplier: int = 1) -> str:
    """e.g. ``mobilenet_2_5_224_tf.h5``, ``mobilenet_1_0_128_tf_no_top.h5``."""
    if depth_multiplier != 1:
        raise UnsupportedError("no official ImageNet weights for depth_multiplier != 1")
    return f"mobilenet_{ALPHA_TEXT[alpha]}_{resolution}_tf{'' if include_top else '_no_top'}.h5"


def recognise(stored: Stored) -> dict | None:
    """alpha = conv_pw_13's filters / 1024; depth_multiplier from conv_dw_1's kernel."""
    last, first_depthwise = kernel_shape(stored, "conv_pw_13"), kernel_shape(stored, "conv_dw_1")
    if last is None or first_depthwise is None:
        return None
    return {"alpha": last[-1] / 1024, "depth_multiplier": int(first_depthwise[-1]),
            **top_options(stored, "conv_preds")}


# Paper Tables 6 (width, at 224) and 7 (resolution, at alpha 1.0):
# (alpha, resolution) -> (ImageNet top-1 %, million mult-adds, million parameters)
PAPER = {(1.0, 224): (70.6, 569, 4.2), (0.75, 224): (68.4, 325, 2.6),
         (0.5, 224): (63.7, 149, 1.3), (0.25, 224): (50.6, 41, 0.5),
         (1.0, 192): (69.1, 418, 4.2), (1.0, 160): (67.2, 290, 4.2),
         (1.0, 128): (64.4, 186, 4.2)}

# TF-slim table: (alpha, resolution) -> (top-1 %, million MACs, million parameters)
SLIM = {(1.0, 224): (70.9, 569, 4.24), (1.0, 192): (70.0, 418, 4.24),
        (1.0, 160): (68.0, 291, 4.24), (1.0, 128): (65.2, 186, 4.24),
        (0.75, 224): (68.4, 317, 2.59), (0.75, 192): (67.2, 233, 2.59),
        (0.75, 160): (65.3, 162, 2.59), (0.75, 128): (62.1, 104, 2.59),
        (0.5, 224): (63.3, 150, 1.34), (0.5, 192): (61.7, 110, 1.34),
        (0.5, 160): (59.1, 77, 1.34), (0.5, 128): (56.3, 49, 1.34),
        (0.25, 224): (49.8, 41, 0.47), (0.25, 192): (47.7, 34, 0.47),
        (0.25, 160): (45.5, 21, 0.47), (0.25, 128): (41.5, 14, 0.47)}

# Paper Table 2, MobileNet 1.0/224: layer type -> (% of mult-adds, % of parameters)
PAPER_TABLE_2 = {"Conv 1x1": (94.86, 74.59), "Conv DW 3x3": (3.06, 1.06),
                 "Conv 3x3 (stem)": (1.19, 0.02), "Fully connected": (0.18, 24.33)}

# Paper Table 4: model -> (top-1 %, million mult-adds, million parameters)
PAPER_TABLE_4 = {"Conv MobileNet": (71.7, 4866, 29.3), "MobileNet": (70.6, 569, 4.2)}

V1 = register(Family(
    name="v1", title="MobileNet V1", build=build,
    options={"depth_multiplier": Option(1, "depthwise filters per input channel")},
    weight_files=WeightFiles(
        folder="https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/",
        alphas=(0.25, 0.5, 0.75, 1.0), resolutions=(128, 160, 192, 224), name=file_name),
    recognise=recognise,
    preprocessing="values in [-1, 1]: preprocess_input(pixels) = pixels / 127.5 - 1",
    published=tuple(Published(f"MobileNet V1 {alpha}", {"alpha": alpha} if alpha != 1.0 else {},
                              *SLIM[alpha, 224], "TF-slim mobilenet_v1.md")
                    for alpha in (1.0, 0.25)),
))
