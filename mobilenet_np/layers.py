"""The building blocks of every layer table: ``Layer``, ``LayerBuilder`` and channel rounding.

Layout: shapes are (H, W, C) without the batch axis; layer names are Keras's, so a layer's
weights are keyed "name/weight" exactly as in the Keras files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .shapes import Pads, conv_output_hw, resolve_padding

POOLING_KINDS = {"avg": "global_average_pool", "max": "global_max_pool"}
BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")  # Keras's order


@dataclass(frozen=True)
class Layer:
    """One layer: its Keras name, what it computes, and the shapes around it (no batch axis)."""

    name: str
    kind: str  # conv2d | depthwise_conv2d | pointwise_conv2d | batch_norm | zero_pad
    #            | relu6 | relu | hard_swish | hard_sigmoid | rescaling | softmax
    #            | global_average_pool | global_max_pool | classifier | dense | flatten
    #            | add | multiply
    input_shape: tuple[int, ...]  # (H, W, C), or (C,) after pooling
    output_shape: tuple[int, ...]
    kernel: int = 1
    stride: int = 1
    padding: str | Pads = "valid"
    weights: dict[str, tuple[int, ...]] = field(default_factory=dict)  # name -> shape, in order
    source: str | None = None  # add / multiply: the earlier layer whose output joins in


class LayerBuilder:
    """Appends layers one at a time, tracking the running activation shape."""

    def __init__(self, input_shape: tuple[int, int, int]) -> None:
        self.shape: tuple[int, ...] = input_shape
        self.layers: list[Layer] = []

    def _add(self, name: str, kind: str, output_shape: tuple[int, ...], **details) -> None:
        self.layers.append(Layer(name, kind, self.shape, output_shape, **details))
        self.shape = output_shape

    def conv(self, name: str, kind: str, kernel: int, stride: int, padding: str | Pads,
             filters: int, depth_multiplier: int = 1, bias: bool = False) -> None:
        """A convolution of ``kind`` conv2d, depthwise_conv2d or pointwise_conv2d."""
        height, width, channels = self.shape
        pads = resolve_padding(padding, (height, width), (kernel, kernel), (stride, stride), name)
        out_hw = conv_output_hw((height, width), (kernel, kernel), (stride, stride), pads, name)
        if kind == "depthwise_conv2d":
            filters = channels * depth_multiplier
            weights = {"depthwise_kernel": (kernel, kernel, channels, depth_multiplier)}
        else:
            weights = {"kernel": (kernel, kernel, channels, filters)}
        if bias:
            weights["bias"] = (filters,)
        self._add(name, kind, (*out_hw, filters), kernel=kernel, stride=stride, padding=padding,
                  weights=weights)

    def batch_norm(self, name: str) -> None:
        channels = self.shape[-1]
        self._add(name, "batch_norm", self.shape, weights={w: (channels,) for w in BN_WEIGHTS})

    def activation(self, name: str, kind: str) -> None:
        self._add(name, kind, self.shape)

    def zero_pad(self, name: str, pads: Pads) -> None:
        (top, bottom), (left, right) = pads
        height, width, channels = self.shape
        self._add(name, "zero_pad", (height + top + bottom, width + left + right, channels),
                  padding=pads)

    def global_pool(self, name: str, kind: str, keepdims: bool = False) -> None:
        """Pool over H and W: (H, W, C) -> (C,), or (1, 1, C) with ``keepdims``."""
        self._add(name, kind, (1, 1, self.shape[-1]) if keepdims else (self.shape[-1],))

    def classifier(self, name: str, classes: int) -> None:
        """Keras's 1x1 conv with bias on the pooled features: a dense layer in conv clothing."""
        channels = self.shape[-1]
        self._add(name, "classifier", (classes,),
                  weights={"kernel": (1, 1, channels, classes), "bias": (classes,)})

    def dense(self, name: str, classes: int) -> None:
        """A fully connected layer with bias on pooled features (Keras ``Dense``)."""
        self._add(name, "dense", (classes,),
                  weights={"kernel": (self.shape[-1], classes), "bias": (classes,)})

    def add(self, name: str, source: str) -> None:
        """Residual connection: this activation plus the output of layer ``source``."""
        self._add(name, "add", self.shape, source=source)

    def multiply(self, name: str, source: str) -> None:
        """Squeeze-and-excite's gate: the output of ``source`` (H, W, C) times this (1, 1, C)."""
        self._add(name, "multiply", self.output_of(source), source=source)

    def flatten(self, name: str) -> None:
        self._add(name, "flatten", (self.shape[-1],))

    def output_of(self, name: str) -> tuple[int, ...]:
        return next(layer.output_shape for layer in self.layers if layer.name == name)


def conv_bn_relu6(builder: LayerBuilder, prefix: str, kind: str, kernel: int, stride: int,
                  padding: str | Pads, filters: int, depth_multiplier: int = 1,
                  bn_suffix: str = "_bn") -> None:
    """conv -> ``{prefix}_bn`` -> ``{prefix}_relu``: the unit every MobileNet layer uses."""
    builder.conv(prefix, kind, kernel, stride, padding, filters, depth_multiplier)
    builder.batch_norm(f"{prefix}{bn_suffix}")
    builder.activation(f"{prefix}_relu", "relu6")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor``, never below 90% of ``value`` (Keras)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def correct_pad(height: int, width: int, kernel: int = 3) -> Pads:
    """Keras's stride-2 padding for MobileNetV2: ((k//2 - 1, k//2) on even sizes, symmetric on odd."""
    return tuple((kernel // 2 - (1 - size % 2), kernel // 2) for size in (height, width))


def check_options(alpha: float, resolution: int | tuple[int, int], pooling: str | None,
                   classes: int) -> tuple[int, int]:
    """Validate the options every family shares; return (height, width)."""
    height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
    if min(height, width) < 32:
        raise ValueError(f"resolution must be at least 32x32, got {height}x{width}")
    if alpha <= 0 or classes < 1:
        raise ValueError(f"need alpha > 0 and classes >= 1, got alpha={alpha}, classes={classes}")
    if pooling is not None and pooling not in POOLING_KINDS:
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    return height, width


