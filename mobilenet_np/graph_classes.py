"""Each Keras class as this package's layer kinds: the table ``CONVERTERS``.

Each converter turns one ``keras_graph.Node`` into zero or more ``Layer`` records of the
kinds in ``kinds.py`` and ``graph_kinds.py`` (a ``Conv2D`` with a ReLU activation is two
layers, a ``Dropout`` none: it is the identity at inference), and says where their weights
are in the file (``Converter.origins``). A class not in the table, or an option a converter
does not take, is refused with one line naming the layer, its class and the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from . import graph_kinds  # noqa: F401  (registers the kinds a graph adds: scale_shift, ...)
from .errors import UnsupportedError
from .keras_graph import KerasGraph, Node
from .keras_graph_weights import Origin
from .kinds import KINDS
from .layers import Layer
from .shapes import conv_output_hw, resolve_padding

MAX_ACTIVATION = 1 << 28  # values in one image's activation (1 GiB of float32): larger refused
IDENTITY_CLASSES = ("Dropout", "SpatialDropout2D", "GaussianDropout", "GaussianNoise",
                    "AlphaDropout", "ActivityRegularization")  # identity at inference
# Activation names (Keras 2 and 3) -> kinds; "hard_sigmoid" is Keras 3's relu6(x + 3) / 6 (Keras 2's
# is 0.2 x + 0.5, clipped: refused, see ``Converter.activation_kind``)
ACTIVATIONS = {"relu": "relu", "relu6": "relu6", "hard_swish": "hard_swish",
               "hard_silu": "hard_swish", "hard_sigmoid": "hard_sigmoid", "sigmoid": "sigmoid",
               "softmax": "softmax", "swish": "swish", "silu": "swish", "linear": None}


class Converter:
    """Turns the nodes of one graph into layers, keeping each output's shape."""

    def __init__(self, graph: KerasGraph) -> None:
        self.graph = graph
        self.shapes: dict[str, tuple[int, ...]] = {graph.input_name: graph.input_shape}
        self.layers: list[Layer] = []
        self.origins: dict[str, Origin] = {}  # layer -> (node, {our weight: Keras's})

    def fail(self, node: Node, why: str) -> UnsupportedError:
        return UnsupportedError(f"{self.graph.source}: layer {node.keras_name!r} "
                                f"({node.class_name}): {why}")

    def add(self, node: Node, name: str, kind: str, input_shape: tuple[int, ...],
            output_shape: tuple[int, ...], keras_names: dict[str, str] | None = None,
            **details) -> Layer:
        """One layer of ``kind``; its weights' names and shapes from the kind's record, their
        arrays from ``node``'s (``keras_names``: ours -> Keras's, where they differ)."""
        if int(np.prod(output_shape)) > MAX_ACTIVATION or min(output_shape, default=1) < 1:
            raise self.fail(node, f"output shape {output_shape} is empty or over "
                                  f"{MAX_ACTIVATION:,} values per image: refused")
        layer = Layer(name, kind, input_shape, output_shape, **details)
        layer = dataclasses.replace(layer, weights=KINDS[kind].weights(layer))
        self.layers.append(layer)
        names = keras_names or {}
        self.origins[name] = (node.name, {weight: names.get(weight, weight)
                                          for weight in layer.weights})
        return layer

    def activation(self, node: Node, name: str | None, shape: tuple[int, ...]) -> None:
        """A conv's or dense's own ``activation`` option, as a layer of its own after it."""
        kind = self.activation_kind(node, name)
        if kind is not None:
            self.add(node, f"{node.name}_{name}", kind, shape, shape)

    def activation_kind(self, node: Node, name) -> str | None:
        if isinstance(name, dict):  # Keras 3 may write {"class_name": ..., "config": ...}
            name = name.get("config", {}).get("name", name.get("class_name"))
        if name not in ACTIVATIONS:
            raise self.fail(node, f"activation {name!r} is not one this package runs "
                                  f"({', '.join(ACTIVATIONS)})")
        if name == "hard_sigmoid" and self.graph.generation == 2:
            raise self.fail(node, "Keras 2's hard_sigmoid (0.2 x + 0.5, clipped) differs from "
                                  "MobileNetV3's relu6(x + 3) / 6: not read")
        return ACTIVATIONS[name]


def _pair(node: Node, converter: Converter, key: str) -> int:
    """A square kernel size or equal strides, as one int (the kinds take one)."""
    value = node.config.get(key, 1)
    values = value if isinstance(value, list) else [value, value]
    if len(values) != 2 or values[0] != values[1]:
        raise converter.fail(node, f"{key} {value}: only square kernels and equal strides are read")
    return int(values[0])


def _check_conv(node: Node, converter: Converter) -> None:
    config = node.config
    if config.get("data_format", "channels_last") != "channels_last":
        raise converter.fail(node, "channels_first: only channels_last (NHWC) is read")
    if any(rate != 1 for rate in np.ravel(config.get("dilation_rate", 1))):
        raise converter.fail(node, f"dilation_rate {config['dilation_rate']}: not supported")
    if config.get("groups", 1) != 1:
        raise converter.fail(node, f"groups={config['groups']}: not supported")
    if config.get("padding", "valid") not in ("same", "valid"):
        raise converter.fail(node, f"padding {config.get('padding')!r}: not supported")


def _conv_shape(node, converter, shape, kernel, stride, filters):
    padding = node.config.get("padding", "valid")
    pads = resolve_padding(padding, shape[:2], (kernel, kernel), (stride, stride), node.name)
    return (*conv_output_hw(shape[:2], (kernel, kernel), (stride, stride), pads, node.name),
            filters)


def conv2d(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
    _check_conv(node, converter)
    kernel, stride = _pair(node, converter, "kernel_size"), _pair(node, converter, "strides")
    out = _conv_shape(node, converter, shape, kernel, stride, int(node.config["filters"]))
    plain = kernel == 1 and stride == 1
    converter.add(node, node.name, "pointwise_conv2d" if plain else "conv2d", shape, out,
                  kernel=kernel, stride=stride, padding=node.config.get("padding", "valid"),
                  options={"bias": True} if node.config.get("use_bias", True) else {})
    converter.activation(node, node.config.get("activation"), out)


def depthwise_conv2d(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
    _check_conv(node, converter)
    kernel, stride = _pair(node, converter, "kernel_size"), _pair(node, converter, "strides")
    filters = shape[-1] * int(node.config.get("depth_multiplier", 1))
    out = _conv_shape(node, converter, shape, kernel, stride, filters)
    converter.add(node, node.name, "depthwise_conv2d", shape, out, kernel=kernel, stride=stride,
                  padding=node.config.get("padding", "valid"),
                  options={"bias": True} if node.config.get("use_bias", True) else {})
    converter.activation(node, node.config.get("activation"), out)


def separable_conv2d(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
    """Keras's ``SeparableConv2D`` is our depthwise then pointwise layer: two layers, one node."""
    _check_conv(node, converter)
    kernel, stride = _pair(node, converter, "kernel_size"), _pair(node, converter, "strides")
    middle = _conv_shape(node, converter, shape, kernel, stride,
                         shape[-1] * int(node.config.get("depth_multiplier", 1)))
    converter.add(node, f"{node.name}_depthwise", "depthwise_conv2d", shape, middle,
                  kernel=kernel, stride=stride, padding=node.config.get("padding", "valid"))
    out = (*middle[:2], int(node.config["filters"]))
    converter.add(node, node.name, "pointwise_conv2d", middle, out,
                  {"kernel": "pointwise_kernel"},
                  options={"bias": True} if node.config.get("use_bias", True) else {})
    converter.activation(node, node.config.get("activation"), out)


def batch_norm(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
    config = node.config
    axis = config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    if axis not in (-1, len(shape)) or not config.get("center", True) or not config.get("scale", True):
        raise converter.fail(node, "only batch norm over the channels, with center and scale, "
                                   "is read")
    converter.add(node, node.name, "batch_norm", shape, shape,
                  options={"epsilon": float(config.get("epsilon", 1e-3))})


def relu(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
    config = node.config
    if config.get("negative_slope") or config.get("threshold"):
        raise converter.fail(node, "a leaky or thresholded ReLU: not supported")
    top = config.get("max_value")
    if top not in (None, 6, 6.0):
        raise converter.fail(node, f"ReLU(max_value={top}): only None and 6 are read")
    converter.add(node, node.name, "relu" if top is None else "relu6", shape, shape)


def activation(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
    kind = converter.activation_kind(node, node.config.get("activation"))
    if kind is not None:
        converter.add(node, node.name, kind, shape, shape)


def zero_pad(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
    padding = node.config.get("padding", 1)
    if isinstance(padding, int):
        pads = ((padding, padding), (padding, padding))
    elif all(isinstance(p, int) for p in padding):
        pads = ((padding[0], padding[0]), (padding[1], padding[1]))
    else:
        pads = tuple(tuple(int(p) for p in pair) for pair in padding)
    (top, bottom), (left, right) = pads
    converter.add(node, node.name, "zero_pad", shape,
                  (shape[0] + top + bottom, shape[1] + left + right, shape[2]), padding=pads)


def normalization(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
    config = node.config
    axis = config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    if axis not in (-1, len(shape)) or config.get("invert"):
        raise converter.fail(node, "only a Normalization over the channels, not inverted, is read")
    given = config.get("mean") is not None
    converter.add(node, node.name, "normalization", shape, shape,
                  options={"mean": config["mean"], "variance": config["variance"]} if given else {})


def rescaling(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
    converter.add(node, node.name, "scale_shift", shape, shape,
                  options={"scale": node.config.get("scale", 1.0),
                           "offset": node.config.get("offset", 0.0)})


def join(kind: str) -> Callable[[Node, Converter, tuple[int, ...]], None]:
    """``Add``/``Multiply``: of two outputs (a residual, a gate), or of one and a constant."""
    def convert(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
        if len(node.inputs) == 1 and len(node.constants) == 1:
            scalar = {"add": {"offset": node.constants[0]}, "multiply": {"scale": node.constants[0]}}
            converter.add(node, node.name, "scale_shift", shape, shape, options=scalar[kind])
        elif len(node.inputs) == 2 and not node.constants:
            shapes = [converter.shapes[name] for name in node.inputs]
            try:
                out = tuple(np.broadcast_shapes(*shapes))
            except ValueError:
                raise converter.fail(node, f"inputs of shapes {shapes} do not broadcast") from None
            converter.add(node, node.name, kind, shape, out, source="?")  # source: by ``linearise``
        else:
            raise converter.fail(node, f"{len(node.inputs)} inputs and {len(node.constants)} "
                                       f"constants: only two inputs, or one and a number, are read")
    return convert


TF_OPS = {"__operators__.add": "add", "math.add": "add", "math.multiply": "multiply"}


def tf_op(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
    """tf.keras's ``TFOpLambda``: only the named ops above, with a number (V3's hard-sigmoid)."""
    function = node.config.get("function")
    if function not in TF_OPS:
        raise converter.fail(node, f"TensorFlow op {function!r}: only {', '.join(TF_OPS)} with "
                                   f"a number are read")
    join(TF_OPS[function])(node, converter, shape)


def global_pool(kind: str) -> Callable[[Node, Converter, tuple[int, ...]], None]:
    def convert(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
        if len(shape) != 3 or node.config.get("data_format", "channels_last") != "channels_last":
            raise converter.fail(node, f"pooling an input of shape {shape}: only (H, W, C) is read")
        keepdims = bool(node.config.get("keepdims", False))
        converter.add(node, node.name, kind, shape, (1, 1, shape[-1]) if keepdims else (shape[-1],))
    return convert


def pool(kind: str) -> Callable[[Node, Converter, tuple[int, ...]], None]:
    """``AveragePooling2D``/``MaxPooling2D``: square windows, strides the window by default."""
    def convert(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
        _check_conv(node, converter)
        kernel = _pair(node, converter, "pool_size")
        stride = _pair(node, converter, "strides") if node.config.get("strides") else kernel
        out = _conv_shape(node, converter, shape, kernel, stride, shape[-1])
        converter.add(node, node.name, kind, shape, out, kernel=kernel, stride=stride,
                      padding=node.config.get("padding", "valid"))
    return convert


def flatten(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
    converter.add(node, node.name, "flatten", shape, (int(np.prod(shape)),))


def reshape(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
    target = [int(size) for size in node.config.get("target_shape", [])]
    if target.count(-1) == 1:
        known = int(np.prod([size for size in target if size != -1]))
        target[target.index(-1)] = int(np.prod(shape)) // max(known, 1)
    if int(np.prod(target)) != int(np.prod(shape)) or min(target, default=0) < 1:
        raise converter.fail(node, f"cannot reshape {shape} into {node.config.get('target_shape')}")
    converter.add(node, node.name, "reshape", shape, tuple(target))


def dense(node: Node, converter: Converter, shape: tuple[int, ...]) -> None:
    if len(shape) != 1 or not node.config.get("use_bias", True):
        raise converter.fail(node, f"Dense on shape {shape}, use_bias="
                                   f"{node.config.get('use_bias', True)}: only a Dense with bias "
                                   f"on a vector (after pooling or Flatten) is read")
    out = (int(node.config["units"]),)
    converter.add(node, node.name, "dense", shape, out)
    converter.activation(node, node.config.get("activation"), out)


CONVERTERS: dict[str, Callable[[Node, Converter, tuple[int, ...]], None]] = {
    "Conv2D": conv2d, "DepthwiseConv2D": depthwise_conv2d, "SeparableConv2D": separable_conv2d,
    "BatchNormalization": batch_norm,
    "ReLU": relu, "Activation": activation, "ZeroPadding2D": zero_pad, "Rescaling": rescaling,
    "Normalization": normalization,
    "Add": join("add"), "Multiply": join("multiply"), "TFOpLambda": tf_op,
    "GlobalAveragePooling2D": global_pool("global_average_pool"),
    "GlobalMaxPooling2D": global_pool("global_max_pool"), "Flatten": flatten,
    "AveragePooling2D": pool("average_pool"), "MaxPooling2D": pool("max_pool"),
    "Reshape": reshape, "Dense": dense,
    **{name: lambda node, converter, shape: None for name in IDENTITY_CLASSES},
}


