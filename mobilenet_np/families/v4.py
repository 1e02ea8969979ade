"""MobileNetV4 (Qin et al. 2024), as timm builds it: conv-small/-medium/-large, hybrid-medium/-large.

Each variant is timm's own table of block strings (``timm/models/mobilenetv3.py``,
``_gen_mobilenet_v4``), decoded here into one shared builder per block type:

- ``cn``: conv + BN + activation;
- ``er``: Fused IB, a full k x k expansion conv, then a linear 1x1 projection;
- ``uir``: the Universal Inverted Bottleneck: [depthwise ``a``, no activation], 1x1 expansion,
  [depthwise ``k``], linear 1x1 projection. ``a`` and ``k`` both present: ExtraDW; ``k`` only:
  V2's inverted residual; ``a`` only: ConvNeXt-like; neither: an FFN;
- ``mqa``: BN, then mobile multi-query attention (``h`` query heads of width ``d``, one shared
  key/value head, keys and values downsampled by a stride-``v`` depthwise conv).

PyTorch's conventions, not Keras's: symmetric padding ((s - 1) + (k - 1)) // 2 (Keras pads
(0, 1) at stride 2), BN epsilon 1e-5, layer names are timm's module paths (``blocks.1.0.dw_mid``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import v4_kinds  # noqa: F401  (registers gelu, layer_scale and mobile_mqa)
from ..errors import MobileNetError, UnsupportedError
from ..layers import POOLING_KINDS, Block, LayerBuilder, check_options, make_divisible
from ..registry import Crop, Family, Option, WeightFiles, register
from ..shapes import Pads, conv_output_hw
from ..stored import Stored, kernel_shape, published_width, top_options
from ..v4_sources import CHECKPOINTS, HUB, INTERPOLATION, cache_name, hub_path, paper_row

EPSILON = 1e-5  # PyTorch's BatchNorm2d default (Keras: 1e-3)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # timm's data config
ALPHAS = (0.35, 0.5, 1.0)  # widths timm defines (conv-small 0.35 and 0.5, with weights for 0.5)
HEAD_WIDTH = 1280  # conv_head, after pooling


@dataclass(frozen=True)
class Variant:
    """One MobileNetV4: stem width, activation, layer scale or not, and its stages of blocks."""

    timm_name: str
    stem: int
    activation: str
    layer_scale: bool  # the hybrids scale every residual branch (timm's LayerScale2d)
    stages: tuple[tuple[str, ...], ...]


# timm's block strings: type_r(repeats)_a(start dw k)_k(mid dw k)_s(stride)_e(expansion)_c(out),
# mqa: _h(heads)_v(key/value stride)_d(head width). Every variant ends in stage cn_r1_k1_s1_c960.
HEAD_STAGE = ("cn_r1_k1_s1_c960",)
CONV_SMALL = (
    ("cn_r1_k3_s2_e1_c32", "cn_r1_k1_s1_e1_c32"), ("cn_r1_k3_s2_e1_c96", "cn_r1_k1_s1_e1_c64"),
    ("uir_r1_a5_k5_s2_e3_c96", "uir_r4_a0_k3_s1_e2_c96", "uir_r1_a3_k0_s1_e4_c96"),
    ("uir_r1_a3_k3_s2_e6_c128", "uir_r1_a5_k5_s1_e4_c128", "uir_r1_a0_k5_s1_e4_c128",
     "uir_r1_a0_k5_s1_e3_c128", "uir_r2_a0_k3_s1_e4_c128"), HEAD_STAGE)
CONV_MEDIUM = (
    ("er_r1_k3_s2_e4_c48",), ("uir_r1_a3_k5_s2_e4_c80", "uir_r1_a3_k3_s1_e2_c80"),
    ("uir_r1_a3_k5_s2_e6_c160", "uir_r2_a3_k3_s1_e4_c160", "uir_r1_a3_k5_s1_e4_c160",
     "uir_r1_a3_k3_s1_e4_c160", "uir_r1_a3_k0_s1_e4_c160", "uir_r1_a0_k0_s1_e2_c160",
     "uir_r1_a3_k0_s1_e4_c160"),
    ("uir_r1_a5_k5_s2_e6_c256", "uir_r1_a5_k5_s1_e4_c256", "uir_r2_a3_k5_s1_e4_c256",
     "uir_r1_a0_k0_s1_e4_c256", "uir_r1_a3_k0_s1_e4_c256", "uir_r1_a3_k5_s1_e2_c256",
     "uir_r1_a5_k5_s1_e4_c256", "uir_r2_a0_k0_s1_e4_c256", "uir_r1_a5_k0_s1_e2_c256"), HEAD_STAGE)
CONV_LARGE = (
    ("er_r1_k3_s2_e4_c48",), ("uir_r1_a3_k5_s2_e4_c96", "uir_r1_a3_k3_s1_e4_c96"),
    ("uir_r1_a3_k5_s2_e4_c192", "uir_r3_a3_k3_s1_e4_c192", "uir_r1_a3_k5_s1_e4_c192",
     "uir_r5_a5_k3_s1_e4_c192", "uir_r1_a3_k0_s1_e4_c192"),
    ("uir_r4_a5_k5_s2_e4_c512", "uir_r1_a5_k0_s1_e4_c512", "uir_r1_a5_k3_s1_e4_c512",
     "uir_r2_a5_k0_s1_e4_c512", "uir_r1_a5_k3_s1_e4_c512", "uir_r1_a5_k5_s1_e4_c512",
     "uir_r3_a5_k0_s1_e4_c512"), HEAD_STAGE)
MQA_M2, MQA_M3 = "mqa_r1_k3_h4_s1_v2_d64_c160", "mqa_r1_k3_h4_s1_d64_c256"
HYBRID_MEDIUM = (
    ("er_r1_k3_s2_e4_c48",), ("uir_r1_a3_k5_s2_e4_c80", "uir_r1_a3_k3_s1_e2_c80"),
    ("uir_r1_a3_k5_s2_e6_c160", "uir_r1_a0_k0_s1_e2_c160", "uir_r1_a3_k3_s1_e4_c160",
     "uir_r1_a3_k5_s1_e4_c160", MQA_M2, "uir_r1_a3_k3_s1_e4_c160", MQA_M2,
     "uir_r1_a3_k0_s1_e4_c160", MQA_M2, "uir_r1_a3_k3_s1_e4_c160", MQA_M2,
     "uir_r1_a3_k0_s1_e4_c160"),
    ("uir_r1_a5_k5_s2_e6_c256", "uir_r1_a5_k5_s1_e4_c256", "uir_r2_a3_k5_s1_e4_c256",
     "uir_r1_a0_k0_s1_e2_c256", "uir_r1_a3_k5_s1_e2_c256", "uir_r1_a0_k0_s1_e2_c256",
     "uir_r1_a0_k0_s1_e4_c256", MQA_M3, "uir_r1_a3_k0_s1_e4_c256", MQA_M3,
     "uir_r1_a5_k5_s1_e4_c256", MQA_M3, "uir_r1_a5_k0_s1_e4_c256", MQA_M3,
     "uir_r1_a5_k0_s1_e4_c256"), HEAD_STAGE)
MQA_L2, MQA_L3 = "mqa_r1_k3_h8_s1_v2_d48_c192", "mqa_r1_k3_h8_s1_d64_c512"
HYBRID_LARGE = (
    ("er_r1_k3_s2_e4_c48",), ("uir_r1_a3_k5_s2_e4_c96", "uir_r1_a3_k3_s1_e4_c96"),
    ("uir_r1_a3_k5_s2_e4_c192", "uir_r3_a3_k3_s1_e4_c192", "uir_r1_a3_k5_s1_e4_c192",
     "uir_r2_a5_k3_s1_e4_c192", MQA_L2, "uir_r1_a5_k3_s1_e4_c192", MQA_L2,
     "uir_r1_a5_k3_s1_e4_c192", MQA_L2, "uir_r1_a5_k3_s1_e4_c192", MQA_L2,
     "uir_r1_a3_k0_s1_e4_c192"),
    ("uir_r4_a5_k5_s2_e4_c512", "uir_r1_a5_k0_s1_e4_c512", "uir_r1_a5_k3_s1_e4_c512",
     "uir_r2_a5_k0_s1_e4_c512", "uir_r1_a5_k3_s1_e4_c512", "uir_r1_a5_k5_s1_e4_c512", MQA_L3,
     "uir_r1_a5_k0_s1_e4_c512", MQA_L3, "uir_r1_a5_k0_s1_e4_c512", MQA_L3,
     "uir_r1_a5_k0_s1_e4_c512", MQA_L3, "uir_r1_a5_k0_s1_e4_c512"), HEAD_STAGE)
VARIANTS = {
    "conv-small": Variant("mobilenetv4_conv_small", 32, "relu", False, CONV_SMALL),
    "conv-medium": Variant("mobilenetv4_conv_medium", 32, "relu", False, CONV_MEDIUM),
    "conv-large": Variant("mobilenetv4_conv_large", 24, "relu", False, CONV_LARGE),
    "hybrid-medium": Variant("mobilenetv4_hybrid_medium", 32, "relu", True, HYBRID_MEDIUM),
    "hybrid-large": Variant("mobilenetv4_hybrid_large", 24, "gelu", True, HYBRID_LARGE),
}


def decode(block: str) -> tuple[str, int, dict[str, int]]:
    """``"uir_r2_a3_k5_s1_e4_c256"`` -> ``("uir", 2, {"a": 3, "k": 5, "s": 1, "e": 4, "c": 256})``."""
    kind, *fields = block.split("_")
    options = {}
    for field in fields:
        match = re.fullmatch(r"([a-z]+)(\d+)", field)
        if match is None:
            raise UnsupportedError(f"block string {block!r}: cannot read {field!r}")
        options[match.group(1)] = int(match.group(2))
    return kind, options.pop("r"), options


def torch_pads(kernel: int, stride: int) -> Pads:
    """PyTorch's (timm's) static padding, the same on every side: ((s - 1) + (k - 1)) // 2."""
    pad = ((stride - 1) + (kernel - 1)) // 2
    return (pad, pad), (pad, pad)


def conv_bn(builder: LayerBuilder, role: str, conv: str, bn: str, kernel: int, stride: int,
            filters: int, activation: str | None, depthwise: bool = False) -> None:
    """conv -> BN -> [activation], named as timm's modules (``conv``, ``bn``, ``bn.act``)."""
    kind = "depthwise_conv2d" if depthwise else "pointwise_conv2d" if kernel == 1 else "conv2d"
    with builder.unit(role):
        builder.conv(conv, kind, kernel, stride, torch_pads(kernel, stride), filters)
        builder.batch_norm(bn, EPSILON)
        if activation is not None:
            builder.activation(f"{bn}.act", activation)


def residual(builder: LayerBuilder, prefix: str, block_input: str, layer_scale: bool) -> None:
    """[layer scale], then add the block's input back (callers check the shapes allow it)."""
    if layer_scale:
        with builder.unit("layer_scale"):
            builder.layer(f"{prefix}layer_scale", "layer_scale")
    with builder.unit("residual"):
        builder.add(f"{prefix}add", block_input)


def conv_block(builder, prefix, o, stride, activation, layer_scale) -> None:
    """``cn``: conv k x k + BN + activation, no shortcut."""
    conv_bn(builder, "conv", f"{prefix}conv", f"{prefix}bn1", o["k"], stride, o["c"], activation)


def fused_ib(builder, prefix, o, stride, activation, layer_scale) -> None:
    """``er``: a full k x k conv expands (where depthwise does not pay), a 1x1 projects."""
    block_input, channels = builder.layers[-1].name, builder.shape[-1]
    conv_bn(builder, "expand", f"{prefix}conv_exp", f"{prefix}bn1", o["k"], stride,
            make_divisible(channels * o["e"]), activation)
    conv_bn(builder, "project", f"{prefix}conv_pwl", f"{prefix}bn2", 1, 1, o["c"], None)
    if stride == 1 and channels == o["c"]:
        with builder.unit("residual"):
            builder.add(f"{prefix}add", block_input)


def universal_ib(builder, prefix, o, stride, activation, layer_scale) -> None:
    """``uir``: [dw_start] pw_exp [dw_mid] pw_proj [dw_end] [layer scale] [+ input].

    The stride goes to the first depthwise there is (timm's rule); dw_start and dw_end have
    no activation.
    """
    block_input, channels = builder.layers[-1].name, builder.shape[-1]
    start, mid, end = o.get("a", 0), o.get("k", 0), o.get("p", 0)
    if start:
        conv_bn(builder, "dw_start", f"{prefix}dw_start.conv", f"{prefix}dw_start.bn", start,
                1 if mid else stride, channels, None, depthwise=True)
    conv_bn(builder, "expand", f"{prefix}pw_exp.conv", f"{prefix}pw_exp.bn", 1, 1,
            make_divisible(channels * o["e"]), activation)
    if mid:
        conv_bn(builder, "depthwise", f"{prefix}dw_mid.conv", f"{prefix}dw_mid.bn", mid, stride,
                0, activation, depthwise=True)
    conv_bn(builder, "project", f"{prefix}pw_proj.conv", f"{prefix}pw_proj.bn", 1, 1, o["c"], None)
    if end:
        conv_bn(builder, "dw_end", f"{prefix}dw_end.conv", f"{prefix}dw_end.bn", end,
                1 if start or mid else stride, 0, None, depthwise=True)
    if stride == 1 and channels == o["c"]:
        residual(builder, prefix, block_input, layer_scale)
    elif layer_scale:
        with builder.unit("layer_scale"):
            builder.layer(f"{prefix}layer_scale", "layer_scale")


def mobile_mqa(builder, prefix, o, stride, activation, layer_scale) -> None:
    """``mqa``: BN, mobile multi-query attention, [layer scale], + input."""
    if stride != 1:
        raise UnsupportedError(f"{prefix}: strided query attention is not in any MobileNetV4")
    block_input, (height, width, channels) = builder.layers[-1].name, builder.shape
    with builder.unit("norm"):
        builder.batch_norm(f"{prefix}norm", EPSILON)
    kernel, kv_stride = o["k"], o.get("v", 1)
    pads = torch_pads(kernel, kv_stride)
    kv_size = conv_output_hw((height, width), (kernel, kernel), (kv_stride, kv_stride), pads,
                             prefix) if kv_stride > 1 else (height, width)
    with builder.unit("attention"):
        builder.layer(f"{prefix}attn", "mobile_mqa", (height, width, o["c"]), kernel=kernel,
                      stride=kv_stride, padding=pads,
                      options={"heads": o["h"], "key_dim": o["d"], "value_dim": o["d"],
                               "kv_size": kv_size, "epsilon": EPSILON})
    if channels == o["c"]:
        residual(builder, prefix, block_input, layer_scale)


BLOCKS = {"cn": ("conv", conv_block), "er": ("fused_ib", fused_ib),
          "uir": ("universal_ib", universal_ib), "mqa": ("attention", mobile_mqa)}


def build(variant: str, alpha: float, resolution: int | tuple[int, int], include_top: bool,
          pooling: str | None, classes: int, include_preprocessing: bool = True) -> list[Block]:
    """Expand a variant's block strings into timm's layers, named by timm's module paths.

    ``include_preprocessing`` starts with timm's normalisation (ImageNet mean and std): the
    model then takes pixels in [0, 255]; without it, normalised images, as timm's model does.
    """
    height, width = check_options(alpha, resolution, pooling, classes)
    spec = VARIANTS[variant]
    builder = LayerBuilder((height, width, 3))
    with builder.block("stem", "stem"):  # timm keeps the stem's width when alpha < 1
        if include_preprocessing:
            with builder.unit("normalize"):
                builder.layer("normalize", "normalize_pixels",
                              options={"mean": IMAGENET_MEAN, "std": IMAGENET_STD})
        stem = spec.stem if alpha < 1 else make_divisible(spec.stem * alpha)
        conv_bn(builder, "conv", "conv_stem", "bn1", 3, 2, stem, spec.activation)
    for stage, strings in enumerate(spec.stages):
        index = 0
        for string in strings:
            kind, repeats, options = decode(string)
            if kind not in BLOCKS:
                raise UnsupportedError(f"block string {string!r}: unknown type {kind!r}")
            options["c"] = make_divisible(options["c"] * alpha)  # timm's round_channels
            block_kind, add_block = BLOCKS[kind]
            for repeat in range(repeats):
                prefix = f"blocks.{stage}.{index}."
                with builder.block(prefix[:-1], block_kind):
                    add_block(builder, prefix, options, options["s"] if repeat == 0 else 1,
                              spec.activation, spec.layer_scale)
                index += 1
    with builder.block("head", "head"), builder.unit("top"):
        if include_top:  # timm's "efficient head": pool first, then the 1x1 conv to 1280
            builder.global_pool("global_pool", "global_average_pool", keepdims=True)
            builder.conv("conv_head", "pointwise_conv2d", 1, 1, "valid", HEAD_WIDTH)
            builder.batch_norm("norm_head", EPSILON)
            builder.activation("norm_head.act", spec.activation)
            builder.flatten("flatten")
            builder.dense("classifier", classes)
            builder.activation("softmax", "softmax")
        elif pooling is not None:
            builder.global_pool(f"global_{pooling}_pool", POOLING_KINDS[pooling])
    return builder.blocks


def recognise(variant: str, stored: Stored) -> dict | None:
    """This variant if the file holds exactly its layers, at the alpha its last conv's width
    tells (960 x alpha, rounded)."""
    stages = VARIANTS[variant].stages
    last = kernel_shape(stored, f"blocks.{len(stages) - 1}.0.conv")
    if last is None:
        return None
    alpha = published_width(last[-1], 960, ALPHAS, make_divisible)
    try:
        blocks = build(variant, alpha, 224, False, None, 1000)
    except MobileNetError:
        return None
    own = {layer.name: layer for block in blocks for layer in block.layers if layer.weights}
    body = {name for name in stored if name.startswith("blocks.") or name in ("conv_stem", "bn1")}
    if body != set(own) or kernel_shape(stored, "conv_stem") != own["conv_stem"].weights["kernel"]:
        return None
    return {"alpha": alpha, **top_options(stored, "classifier")}


def file_name(variant: str, alpha: float, resolution: int, include_top: bool, **options) -> str:
    """timm's checkpoint of this variant, e.g. ``mobilenetv4_conv_small.e2400_r224_in1k.safetensors``
    (one file, with its classifier, for any input size and for ``include_top`` either way)."""
    return cache_name(VARIANTS[variant].timm_name, CHECKPOINTS[variant])


def v4_family(variant: str, spec: Variant) -> Family:
    """The record of one MobileNetV4 variant: its builder, timm's weights and data config."""
    checkpoint = CHECKPOINTS[variant]
    name = file_name(variant, 1.0, 224, True)
    return Family(
        name=f"v4-{variant}", title="MobileNetV4-" + "-".join(map(str.capitalize,
                                                                   variant.split("-"))),
        build=lambda **options: build(variant, **options),
        options={"include_preprocessing": Option(True, "normalise pixels by ImageNet's mean "
                                                       "and std inside the model")},
        weight_files=WeightFiles(
            folder=HUB, alphas=(1.0,), resolutions=None,
            name=lambda *args, **kw: file_name(variant, *args, **kw),
            checksums={name: f"sha256:{checkpoint.sha256}"} if checkpoint.sha256 else {},
            remote=hub_path),
        recognise=lambda stored: recognise(variant, stored),
        preprocessing=f"pixels in [0, 255]: the model normalises them by ImageNet's mean and "
                      f"std (include_preprocessing=True; timm's model takes them normalised); "
                      f"timm's {spec.timm_name}.{checkpoint.tag} was trained at "
                      f"{checkpoint.size}x{checkpoint.size}, photos resized to "
                      f"{checkpoint.size}/{checkpoint.crop_pct:g} {INTERPOLATION}, centre-cropped",
        published=(paper_row(variant),),
        crop=Crop(checkpoint.crop_pct, INTERPOLATION))


FAMILIES_V4 = {variant: register(v4_family(variant, spec)) for variant, spec in VARIANTS.items()}
