"""What every layer table is made of: ``Layer``, ``Block``, ``LayerBuilder`` and channel rounding.

Layout: shapes are (H, W, C) without the batch axis; layer names are Keras's, so a layer's
weights are keyed "name/weight" exactly as in the Keras files. What each kind of layer
computes, weighs and costs is said once, in ``kinds.py``; a ``Layer`` is only data.

A table keeps its structure: every layer knows its block (``stem``, ``separable``,
``inverted_residual``, ``head``) and its role in that block (``depthwise``, ``project``,
``squeeze_excite``, ...). The layers of one role in one block form a *unit*, which the fused
path runs as one step; the cost counters find a block's depthwise and projection by role.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .kinds import KINDS
from .shapes import Pads, conv_output_hw, resolve_padding

Params = dict[str, np.ndarray]  # "conv_dw_3_bn/gamma" -> array: layer name / Keras weight name
POOLING_KINDS = {"avg": "global_average_pool", "max": "global_max_pool"}
MIXING_ROLES = ("pointwise", "project")  # the 1x1 conv that follows a block's depthwise


@dataclass(frozen=True)
class Layer:
    """One layer: its Keras name, what it computes, and the shapes around it (no batch axis)."""

    name: str
    kind: str  # a key of kinds.KINDS: conv2d, depthwise_conv2d, batch_norm, relu6, add, ...
    input_shape: tuple[int, ...]  # (H, W, C), or (C,) after pooling
    output_shape: tuple[int, ...]
    kernel: int = 1
    stride: int = 1
    padding: str | Pads = "valid"
    weights: dict[str, tuple[int, ...]] = field(default_factory=dict)  # name -> shape, in order
    options: dict = field(default_factory=dict)  # the kind's own details: bias, epsilon, ...
    source: str | None = None  # add / multiply: the earlier layer whose output joins in
    block: str = ""  # the block it belongs to, e.g. "block_3"
    role: str = ""  # its unit's role in the block: "depthwise", "project", "squeeze_excite", ...


@dataclass(frozen=True)
class Block:
    """Consecutive layers that a paper draws as one box, e.g. a depthwise-separable block."""

    name: str
    kind: str  # stem | separable | inverted_residual | head
    layers: tuple[Layer, ...]

    def units(self) -> list[tuple[str, tuple[Layer, ...]]]:
        """The layers grouped by role, in order: ``[("expand", (conv, bn, act)), ...]``."""
        units: list[tuple[str, list[Layer]]] = []
        for layer in self.layers:
            if not units or units[-1][0] != layer.role:
                units.append((layer.role, []))
            units[-1][1].append(layer)
        return [(role, tuple(layers)) for role, layers in units]

    def conv(self, *roles: str) -> Layer | None:
        """The convolution of the first of ``roles`` this block has, or None."""
        for role in roles:
            for layer in self.layers:
                if layer.role == role and KINDS[layer.kind].fuses == "conv":
                    return layer
        return None


class LayerBuilder:
    """Appends layers one at a time, tracking the running activation shape, block and role."""

    def __init__(self, input_shape: tuple[int, int, int]) -> None:
        self.shape: tuple[int, ...] = input_shape
        self.layers: list[Layer] = []
        self.blocks: list[Block] = []
        self._block: tuple[str, str] = ("", "")
        self.role = ""

    @contextlib.contextmanager
    def block(self, name: str, kind: str) -> Iterator[None]:
        """Layers added inside ``with builder.block(...)`` form one ``Block``."""
        start, self._block = len(self.layers), (name, kind)
        yield
        if len(self.layers) > start:
            self.blocks.append(Block(name, kind, tuple(self.layers[start:])))
        self._block = ("", "")

    @contextlib.contextmanager
    def unit(self, role: str) -> Iterator[None]:
        """Layers added inside ``with builder.unit(role)`` play that role in their block."""
        self.role = role
        yield
        self.role = ""

    def layer(self, name: str, kind: str, output_shape: tuple[int, ...] | None = None,
              **details) -> Layer:
        """Append one layer of ``kind`` (elementwise kinds keep the shape); its weights' names
        and shapes come from the kind's record."""
        if not self._block[0] or not self.role:
            raise InputError(f"layer {name} was added outside a block or a unit")
        if kind not in KINDS:
            raise InputError(f"layer {name}: unknown kind {kind!r} (kinds.KINDS has "
                             f"{', '.join(KINDS)})")
        layer = Layer(name, kind, self.shape, output_shape or self.shape, block=self._block[0],
                      role=self.role, **details)
        layer = dataclasses.replace(layer, weights=KINDS[kind].weights(layer))
        self.layers.append(layer)
        self.shape = layer.output_shape
        return layer

    def conv(self, name: str, kind: str, kernel: int, stride: int, padding: str | Pads,
             filters: int, depth_multiplier: int = 1, bias: bool = False) -> None:
        """A convolution of ``kind`` conv2d, depthwise_conv2d or pointwise_conv2d."""
        height, width, channels = self.shape
        pads = resolve_padding(padding, (height, width), (kernel, kernel), (stride, stride), name)
        out_hw = conv_output_hw((height, width), (kernel, kernel), (stride, stride), pads, name)
        if kind == "depthwise_conv2d":
            filters = channels * depth_multiplier
        self.layer(name, kind, (*out_hw, filters), kernel=kernel, stride=stride, padding=padding,
                   options={"bias": True} if bias else {})

    def batch_norm(self, name: str, epsilon: float | None = None) -> None:
        """Inference batch norm; ``epsilon`` when not Keras's 1e-3 (PyTorch's is 1e-5)."""
        self.layer(name, "batch_norm", options={} if epsilon is None else {"epsilon": epsilon})

    def activation(self, name: str, kind: str) -> None:
        self.layer(name, kind)

    def zero_pad(self, name: str, pads: Pads) -> None:
        (top, bottom), (left, right) = pads
        height, width, channels = self.shape
        self.layer(name, "zero_pad", (height + top + bottom, width + left + right, channels),
                   padding=pads)

    def global_pool(self, name: str, kind: str, keepdims: bool = False) -> None:
        """Pool over H and W: (H, W, C) -> (C,), or (1, 1, C) with ``keepdims``."""
        self.layer(name, kind, (1, 1, self.shape[-1]) if keepdims else (self.shape[-1],))

    def classifier(self, name: str, classes: int) -> None:
        """Keras's 1x1 conv with bias on the pooled features: a dense layer in conv clothing."""
        self.layer(name, "classifier", (classes,))

    def dense(self, name: str, classes: int) -> None:
        """A fully connected layer with bias on pooled features (Keras ``Dense``)."""
        self.layer(name, "dense", (classes,))

    def add(self, name: str, source: str) -> None:
        """Residual connection: this activation plus the output of layer ``source``."""
        self.layer(name, "add", source=source)

    def multiply(self, name: str, source: str) -> None:
        """Squeeze-and-excite's gate: the output of ``source`` (H, W, C) times this (1, 1, C)."""
        self.layer(name, "multiply", self.output_of(source), source=source)

    def flatten(self, name: str) -> None:
        self.layer(name, "flatten", (self.shape[-1],))

    def output_of(self, name: str) -> tuple[int, ...]:
        return next(layer.output_shape for layer in self.layers if layer.name == name)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor``, never below 90% of ``value`` (Keras)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def correct_pad(height: int, width: int, kernel: int = 3) -> Pads:
    """Keras's stride-2 padding for MobileNetV2/V3: (k//2 - 1, k//2) on even sizes, symmetric on odd."""
    return tuple((kernel // 2 - (1 - size % 2), kernel // 2) for size in (height, width))


def check_options(alpha: float, resolution: int | tuple[int, int], pooling: str | None,
                  classes: int) -> tuple[int, int]:
    """Validate the options every family shares; return (height, width)."""
    height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
    if min(height, width) < 32:
        raise InputError(f"resolution must be at least 32x32, got {height}x{width}")
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise InputError(f"alpha must be a positive finite number, got {alpha!r}")
    if classes < 1:
        raise InputError(f"classes must be >= 1, got {classes}")
    if pooling is not None and pooling not in POOLING_KINDS:
        raise InputError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    return height, width
