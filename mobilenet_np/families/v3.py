"""MobileNetV3 Large and Small (Howard et al. 2019, Tables 1 and 2), as Keras builds them.

Two families, one builder: the same inverted residual as V2, with 5x5 kernels in places,
squeeze-and-excite gates and hard-swish; "minimalistic" drops all three (3x3, no SE, ReLU).
"""

from __future__ import annotations

from ..blocks import ConvNames, conv_unit, inverted_residual, se_channels
from ..errors import UnsupportedError
from ..layers import POOLING_KINDS, Block, LayerBuilder, check_options, make_divisible
from ..registry import Family, Option, Published, WeightFiles, register
from ..stored import Stored, kernel_shape, published_width, top_options

# "K" is the large kernel (5, or 3 when minimalistic), SE a squeeze-and-excite gate (none when
# minimalistic), "HS" hard-swish (ReLU when minimalistic). Filters are before alpha.
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
ROWS = {"large": MOBILENET_V3_LARGE, "small": MOBILENET_V3_SMALL}
LAST_POINT = {"large": 1280, "small": 1024}  # the 1x1 conv after pooling, before alpha > 1
# Activation layers get names like expanded_conv_3_expand_act; Keras leaves them unnamed.
NAMES = ConvNames(bn="_bn", act="_act", pad="depthwise_pad")


def build(size: str, alpha: float, resolution: int | tuple[int, int], include_top: bool,
          pooling: str | None, classes: int, minimalistic: bool,
          include_preprocessing: bool) -> list[Block]:
    """Expand ``MOBILENET_V3_LARGE`` or ``_SMALL`` (``size``) into Keras's layers.

    ``include_preprocessing`` starts with Keras's ``Rescaling``: the model then takes pixels
    in [0, 255].
    """
    height, width = check_options(alpha, resolution, pooling, classes)
    large_kernel, use_se = (3, False) if minimalistic else (5, True)
    act = {"RE": "relu", "HS": "relu" if minimalistic else "hard_swish"}
    builder = LayerBuilder((height, width, 3))
    with builder.block("stem", "stem"):
        if include_preprocessing:
            with builder.unit("rescaling"):
                builder.activation("rescaling", "rescaling")
        conv_unit(builder, "conv", "conv", "conv2d", 3, 2, 16, act["HS"], NAMES)
    for block, (expansion, filters, kernel, stride, se, activation) in enumerate(ROWS[size]):
        hidden = make_divisible(builder.shape[-1] * expansion)
        with builder.block(f"block_{block}", "inverted_residual"):
            inverted_residual(builder, f"expanded_conv_{block}_" if block else "expanded_conv_",
                              NAMES, hidden if block else None,
                              large_kernel if kernel == "K" else kernel, stride,
                              make_divisible(filters * alpha), act[activation],
                              se_channels(hidden) if se and use_se else None)
    with builder.block("head", "head"):
        conv_unit(builder, "conv", "conv_1", "pointwise_conv2d", 1, 1,
                  make_divisible(builder.shape[-1] * 6), act["HS"], NAMES)
        with builder.unit("top"):
            if include_top:
                last_point = LAST_POINT[size]
                last_point = make_divisible(last_point * alpha) if alpha > 1.0 else last_point
                builder.global_pool("global_average_pooling2d", "global_average_pool",
                                    keepdims=True)
                builder.conv("conv_2", "pointwise_conv2d", 1, 1, "valid", last_point, bias=True)
                builder.activation("conv_2_act", act["HS"])
                builder.conv("logits", "pointwise_conv2d", 1, 1, "valid", classes, bias=True)
                builder.flatten("flatten")
                builder.activation("predictions", "softmax")
            elif pooling is not None:
                builder.global_pool(f"{pooling}_pool", POOLING_KINDS[pooling])
    return builder.blocks


def file_name(size: str, alpha: float, resolution: int, include_top: bool,
              minimalistic: bool = False, include_preprocessing: bool = True) -> str:
    """e.g. ``weights_mobilenet_v3_small_minimalistic_224_1.0_float_no_top_v2.h5``."""
    if minimalistic and alpha != 1.0:
        raise UnsupportedError("Keras publishes minimalistic MobileNetV3 weights at alpha 1.0 only")
    variant = f"{size}{'_minimalistic' if minimalistic else ''}_224_{float(alpha)}"
    return f"weights_mobilenet_v3_{variant}_float{'' if include_top else '_no_top_v2'}.h5"


def recognise(size: str, stored: Stored) -> dict | None:
    """Large has 15 blocks, Small 11; alpha from the last projection; SE tells minimalistic."""
    last_block = len(ROWS[size]) - 1
    projections = [kernel_shape(stored, f"expanded_conv_{block}_project")
                   for block in (last_block, last_block + 1)]
    if projections[0] is None or projections[1] is not None:
        return None
    last = projections[0]
    alpha = published_width(last[-1], ROWS[size][-1][1], (0.75, 1.0), make_divisible)
    return {"alpha": alpha, "minimalistic": not any("squeeze_excite" in n for n in stored),
            **top_options(stored, "logits")}


# The MD5 digests Keras checks its downloads against (keras/src/applications/mobilenet_v3.py,
# WEIGHTS_HASHES): (with top, without top), by model.
KERAS_MD5 = {
    "large_224_0.75_float": ("765b44a33ad4005b3ac83185abf1d0eb",
                             "40af19a13ebea4e2ee0c676887f69a2e"),
    "large_224_1.0_float": ("59e551e166be033d707958cf9e29a6a7",
                            "07fb09a5933dd0c8eaafa16978110389"),
    "large_minimalistic_224_1.0_float": ("675e7b876c45c57e9e63e6d90a36599c",
                                         "ec5221f64a2f6d1ef965a614bdae7973"),
    "small_224_0.75_float": ("cb65d4e5be93758266aa0a7f2c6708b7",
                             "ebdb5cc8e0b497cd13a7c275d475c819"),
    "small_224_1.0_float": ("8768d4c2e7dee89b9d02b2d03d65d862",
                            "d3e8ec802a04aa4fc771ee12a9a9b836"),
    "small_minimalistic_224_1.0_float": ("99cd97fb2fcdad2bf028eb838de69e37",
                                         "cde8136e733e811080d9fcd8a252f7e4"),
}
CHECKSUMS = {f"weights_mobilenet_v3_{model}{suffix}.h5": f"md5:{digest}"
             for model, digests in KERAS_MD5.items()
             for suffix, digest in zip(("", "_no_top_v2"), digests, strict=True)}


def keras2_name(name: str) -> str:
    """Keras 2 named V3's layers with slashes and capitals: ``expanded_conv_3/squeeze_excite/
    Conv``, ``Conv/BatchNorm``, ``Logits``; Keras 3 (and this package) ``..._squeeze_excite_conv``,
    ``conv_bn``, ``logits``. Names already in Keras 3's form come back unchanged."""
    return name.replace("/BatchNorm", "_bn").replace("/", "_").lower()


def v3_family(size: str, title: str, published: tuple[Published, ...]) -> Family:
    """The record of MobileNetV3-Large or -Small: the two differ only in rows and numbers."""
    return Family(
        name=f"v3-{size}", title=title,
        build=lambda **options: build(size, **options),
        options={"minimalistic": Option(False, "MobileNetV3 without squeeze-excite, hard-swish "
                                               "and 5x5 kernels"),
                 "include_preprocessing": Option(True, "rescale pixels inside the model")},
        weight_files=WeightFiles(
            folder="https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/",
            alphas=(0.75, 1.0), resolutions=None,
            name=lambda *args, **options: file_name(size, *args, **options),
            checksums={name: digest for name, digest in CHECKSUMS.items() if f"_{size}_" in name}),
        recognise=lambda stored: recognise(size, stored),
        preprocessing="pixels in [0, 255]: the model rescales them itself "
                      "(include_preprocessing=True)",
        published=published, keras_name=keras2_name)


SLIM = "TF-slim mobilenet/README.md"
V3_LARGE = register(v3_family("large", "MobileNetV3-Large", (
    Published("MobileNetV3-Large 1.0", {}, 75.2, 217, 5.4, SLIM),
    Published("MobileNetV3-Large 0.75", {"alpha": 0.75}, 73.3, 155, 4.0, SLIM),
    Published("MobileNetV3-Large minimalistic", {"minimalistic": True}, 72.3, 209, 3.9, SLIM))))
V3_SMALL = register(v3_family("small", "MobileNetV3-Small", (
    Published("MobileNetV3-Small 1.0", {}, 67.5, 66, 2.9, SLIM),
    Published("MobileNetV3-Small 0.75", {"alpha": 0.75}, 65.4, 44, 2.4, SLIM),
    Published("MobileNetV3-Small minimalistic", {"minimalistic": True}, 61.9, 65, 2.0, SLIM))))
