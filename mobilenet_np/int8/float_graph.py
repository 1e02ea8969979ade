"""The float32 ops of a .tflite graph.

A float .tflite file (TF Hub, Model Maker, or a float16-weights file whose DEQUANTIZE ops
widen the weights at run time) is the float network of the rest of the package in TFLite's
layouts. CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, MEAN, AVERAGE_POOL_2D, HARD_SWISH and
SOFTMAX run on one of two modules with the same functions (``float_kernels``):
``float_order.py`` adds in TFLite's own order (bit-exact on x86-64, several times slower),
which a dynamic-range graph needs, since its hybrid ops quantize these results and an ulp can
become a step; ``float_blas.py`` (BLAS, within float32 round-off) everywhere else. ADD, SUB,
MUL and the clamps are one correctly rounded step (``mobilenet_np.ops``), the same in any
runtime; LOGISTIC is within float32 round-off of TFLite's (docs/int8.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import ops as float_ops
from ..errors import InputError, UnsupportedError
from . import float_blas, float_order, hybrid, reference
from . import ops as int8_ops
from .tflite_file import Graph, Operator

FLOAT_ORDERS = ("auto", "tflite", "blas")
WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
FUSED = {"NONE": lambda y: y, "RELU": float_ops.relu, "RELU6": float_ops.relu6,
         "RELU_N1_TO_1": lambda y: np.clip(y, -1.0, 1.0)}


def _activation(op: Operator) -> Callable:
    """The op's fused activation as a float function."""
    name = op.options.get("fused_activation_function", "NONE")
    if name not in FUSED:
        raise UnsupportedError(f"fused activation {name} is not supported")
    return FUSED[name]


def is_hybrid(graph: Graph, op: Operator) -> bool:
    """A dynamic-range op: int8 (or uint8) weights on float32 activations (``Optimize.DEFAULT``)."""
    return (op.opcode in WEIGHTED and graph.tensors[op.outputs[0]].dtype == np.float32
            and graph.tensors[op.inputs[1]].dtype in (np.int8, np.uint8))


def float_kernels(graph: Graph, order: str):
    """The module the float ops run on: ``float_order`` for order "tflite", ``float_blas`` for
    "blas"; "auto" picks "tflite" when a hybrid op quantizes float results, else "blas"."""
    if order not in FLOAT_ORDERS:
        raise InputError(f"float_order must be one of {', '.join(FLOAT_ORDERS)}, got {order!r}")
    if order == "auto":
        order = "tflite" if any(is_hybrid(graph, op) for op in graph.operators) else "blas"
    return float_order if order == "tflite" else float_blas


def prepare_conv(graph: Graph, op: Operator, floats) -> Callable:
    """CONV_2D / DEPTHWISE_CONV_2D (weights maybe computed by a DEQUANTIZE) on ``floats``."""
    o, activate = op.options, _activation(op)
    if (o["dilation_h_factor"], o["dilation_w_factor"]) != (1, 1):
        raise UnsupportedError(f"{op.opcode} with dilation is not supported (op {op.index})")
    stride = (o["stride_h"], o["stride_w"])

    def conv(x, w, b=None):
        return activate(floats.conv2d(x, w, b, stride, o["padding"]))

    def depthwise(x, w, b=None):
        return activate(floats.depthwise_conv2d(x, w, b, stride, o["padding"], o["depth_multiplier"]))
    return conv if op.opcode == "CONV_2D" else depthwise


def prepare_hybrid(graph: Graph, op: Operator, kernels) -> Callable:
    """CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED with int8 weights on float32 activations
    (dynamic-range files): TFLite's hybrid kernels (``hybrid.py``; ``kernels=reference``
    runs their loop twins), then the fused activation in float32."""
    o, activate, w = op.options, _activation(op), graph.tensors[op.inputs[1]]
    if w.dtype != np.int8 or w.quantization is None or np.any(w.quantization.zero_point != 0):
        raise UnsupportedError(f"{op.opcode} with {np.dtype(w.dtype).name} weights on float "
                               f"activations: only symmetric int8 weights (TFLite's hybrid kernels)")
    run = reference if kernels is reference else hybrid  # the loop twins, or vectorised (numba too)
    scale = w.quantization.scale.astype(np.float32)
    if op.opcode == "FULLY_CONNECTED":
        def fully_connected(x, weights, b=None):
            flat = x.reshape(-1, weights.shape[1])  # (N, ..., Cin) -> (N', Cin)
            out = activate(run.hybrid_fully_connected(flat, weights, scale, b,
                                                      o["asymmetric_quantize_inputs"]))
            return out.reshape(*x.shape[:-1], -1) if o["keep_num_dims"] else out
        return fully_connected
    if (o["dilation_h_factor"], o["dilation_w_factor"]) != (1, 1):
        raise UnsupportedError(f"{op.opcode} with dilation is not supported (op {op.index})")
    stride = (o["stride_h"], o["stride_w"])
    if op.opcode == "CONV_2D":
        return lambda x, weights, b=None: activate(run.hybrid_conv2d(x, weights, scale, b, stride,
                                                                     o["padding"]))
    return lambda x, weights, b=None: activate(run.hybrid_depthwise_conv2d(
        x, weights, scale, b, stride, o["padding"], o["depth_multiplier"]))


def prepare_fully_connected(graph: Graph, op: Operator, floats) -> Callable:
    """FULLY_CONNECTED: weights (Cout, Cin); the input flattened to (N', Cin)."""
    activate = _activation(op)

    def run(x, w, b=None):
        out = activate(floats.fully_connected(x.reshape(-1, w.shape[1]), w, b))  # (N', Cout)
        return out.reshape(*x.shape[:-1], -1) if op.options["keep_num_dims"] else out
    return run


def prepare_average_pool(graph: Graph, op: Operator, floats) -> Callable:
    """AVERAGE_POOL_2D over the whole image (MobileNet's only use), as global average pooling."""
    o, (_, height, width, _) = op.options, graph.tensors[op.inputs[0]].shape
    if (o["filter_height"], o["filter_width"]) != (height, width) or o["padding"] != "VALID":
        raise UnsupportedError(f"float AVERAGE_POOL_2D only over the whole image (op {op.index}: "
                               f"{o['filter_height']}x{o['filter_width']} on {height}x{width})")
    activate = _activation(op)
    return lambda x: activate(floats.mean(x, (1, 2), keep_dims=True))  # (N, 1, 1, C)


def prepare_mean(graph: Graph, op: Operator, floats) -> Callable:
    """MEAN over constant axes, in float32."""
    axes = graph.tensors[op.inputs[1]].data
    if axes is None:
        raise UnsupportedError(f"MEAN needs constant axes (op {op.index})")
    axes = tuple(sorted({int(a) % len(graph.tensors[op.inputs[0]].shape) for a in axes.ravel()}))
    return lambda x, *_: floats.mean(x, axes, op.options["keep_dims"])


def prepare_softmax(graph: Graph, op: Operator, floats) -> Callable:
    """SOFTMAX of ``beta * x`` over the last axis."""
    return lambda x: floats.softmax(x, op.options["beta"])


BINARY = {"ADD": np.add, "SUB": np.subtract, "MUL": np.multiply}


def prepare_binary(graph: Graph, op: Operator, floats) -> Callable:
    """ADD, SUB and MUL, broadcasting, then the fused activation."""
    activate, combine = _activation(op), BINARY[op.opcode]
    return lambda a, b: activate(combine(a, b, dtype=np.float32))


def prepare_max_pool(graph: Graph, op: Operator, floats) -> Callable:
    """MAX_POOL_2D: the integer kernel's max, exact in any type (padded taps are -inf)."""
    o, activate = op.options, _activation(op)
    return lambda x: activate(int8_ops.max_pool2d(x, (o["filter_height"], o["filter_width"]),
                                                  (o["stride_h"], o["stride_w"]), o["padding"],
                                                  -np.inf, np.inf))


FLOAT_PREPARE = {
    "CONV_2D": prepare_conv, "DEPTHWISE_CONV_2D": prepare_conv,
    "FULLY_CONNECTED": prepare_fully_connected, "AVERAGE_POOL_2D": prepare_average_pool,
    "MEAN": prepare_mean, "SOFTMAX": prepare_softmax, "ADD": prepare_binary, "SUB": prepare_binary,
    "MUL": prepare_binary, "MAX_POOL_2D": prepare_max_pool,
    "CONCATENATION": lambda graph, op, floats: lambda *parts: _activation(op)(
        np.concatenate(parts, axis=op.options["axis"])),
    "HARD_SWISH": lambda graph, op, floats: floats.hard_swish,
    "LOGISTIC": lambda graph, op, floats: lambda x: np.float32(1) / (np.float32(1) + np.exp(-x)),
}
