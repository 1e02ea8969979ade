"""``load_tflite``: run an int8 .tflite MobileNet with NumPy, bit for bit as TFLite's builtin kernels.

    model = mnp.load_tflite("mobilenet_v1_int8.tflite")
    q_out = model.run_quantized(q_in)            # raw int8 in, raw int8 out
    probs = model.predict(x)                     # float in, quantized, dequantized out
    q_out, tensors = model.forward(q_in, capture=True)   # every intermediate, by tensor name
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputError, UnsupportedError, WeightsError
from . import graph as prep
from . import ops
from .fixedpoint import Requantize, quantize_multiplier
from .tflite_file import Graph, Operator, read_tflite


def _constant(graph: Graph, index: int, op: Operator) -> np.ndarray:
    data = graph.tensors[index].data
    if data is None:
        raise ValueError(f"{op.opcode} (op {op.index}) needs a constant input {index}")
    return data


def _prepare_pad(graph: Graph, op: Operator, kernels) -> Callable:
    paddings = _constant(graph, op.inputs[1], op)  # (rank, 2): before and after each axis
    if op.opcode == "PADV2":
        value = int(_constant(graph, op.inputs[2], op).ravel()[0])
    else:
        out = graph.tensors[op.outputs[0]]
        value = int(out.quantization.zero_point[0]) if out.quantization is not None else 0
    return lambda q, *_: kernels.pad(q, paddings, value)


def _prepare_reshape(graph: Graph, op: Operator, kernels) -> Callable:
    def run(q, shape=None):
        if shape is None:
            shape = op.options.get("new_shape") or graph.tensors[op.outputs[0]].shape
        return q.reshape(tuple(int(d) for d in np.ravel(shape)))  # one -1 is inferred
    return run


def _prepare_strided_slice(graph: Graph, op: Operator, kernels) -> Callable:
    """STRIDED_SLICE as converters leave it in shape arithmetic (begin/end masks, shrink axes)."""
    o = op.options
    if o["ellipsis_mask"] or o["new_axis_mask"]:
        raise ValueError(f"STRIDED_SLICE with ellipsis or new-axis masks is not supported (op {op.index})")

    def run(q, begin, end, strides):
        index = []
        for axis, (b, e, s) in enumerate(zip(begin, end, strides, strict=True)):
            if o["shrink_axis_mask"] >> axis & 1:
                index.append(int(b))
                continue
            index.append(slice(None if o["begin_mask"] >> axis & 1 else int(b),
                               None if o["end_mask"] >> axis & 1 else int(e), int(s)))
        return np.asarray(q[tuple(index)])
    return run


def _prepare_quantize(graph: Graph, op: Operator, kernels) -> Callable:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    y_scale, y_zero = prep.scale_and_zero(y)
    if x.dtype == np.float32:
        return lambda q: kernels.quantize(q, y_scale, y_zero, y.dtype)
    x_scale, x_zero = prep.scale_and_zero(x)  # int8 -> int8: requantize
    out = Requantize(*quantize_multiplier(float(x_scale) / float(y_scale)), y_zero,
                     rounding=prep.ROUNDING["QUANTIZE"])
    return lambda q: out.apply(q.astype(np.int64) - x_zero)


def _prepare_dequantize(graph: Graph, op: Operator, kernels) -> Callable:
    scale, zero = prep.scale_and_zero(graph.tensors[op.inputs[0]])
    return lambda q: kernels.dequantize(q, scale, zero)


PREPARE = {
    "CONV_2D": prep.prepare_conv, "DEPTHWISE_CONV_2D": prep.prepare_conv,
    "FULLY_CONNECTED": prep.prepare_fully_connected, "ADD": prep.prepare_add, "MUL": prep.prepare_mul,
    "MEAN": prep.prepare_mean, "AVERAGE_POOL_2D": prep.prepare_average_pool,
    "HARD_SWISH": prep.prepare_hard_swish, "LOGISTIC": prep.prepare_logistic,
    "SOFTMAX": prep.prepare_softmax, "PAD": _prepare_pad, "PADV2": _prepare_pad,
    "RESHAPE": _prepare_reshape, "STRIDED_SLICE": _prepare_strided_slice,
    "SHAPE": lambda g, op, k: lambda q: np.array(q.shape, np.int32),
    "PACK": lambda g, op, k: lambda *values: np.stack(values, axis=op.options["axis"]),
    "SQUEEZE": lambda g, op, k: lambda q: np.squeeze(q, axis=op.options["squeeze_dims"] or None),
    "QUANTIZE": _prepare_quantize, "DEQUANTIZE": _prepare_dequantize,
}


def _prepared(graph: Graph, op: Operator, kernels, name: str) -> Callable:
    """One op made ready to run; a file whose op cannot be (damaged, unusual) is one WeightsError."""
    try:
        return PREPARE[op.opcode](graph, op, kernels)
    except ValueError:
        raise
    except Exception as error:  # noqa: BLE001
        # A damaged file reaches here with any shape of nonsense (an index out of range, a
        # zero scale, a missing option): every failure means "this op cannot run".
        raise WeightsError(f"{name}: op {op.index} ({op.opcode}) cannot be prepared, a damaged "
                           f"or unusual file ({type(error).__name__}: {error})") from None


class TFLiteModel:
    """A .tflite graph compiled to NumPy steps (NHWC, the file's dtypes)."""

    def __init__(self, graph: Graph, name: str = "<model>", kernels=ops) -> None:
        self.graph, self.name = graph, name
        unknown = sorted({op.opcode for op in graph.operators if op.opcode not in PREPARE})
        if unknown:
            raise UnsupportedError(f"{name}: unsupported op(s) {', '.join(unknown)}; mobilenet-np runs "
                                   f"{', '.join(sorted(PREPARE))}")
        if any(tensor.dtype == np.uint8 for tensor in graph.tensors):
            raise UnsupportedError(f"{name}: uint8 tensors (the older asymmetric scheme) are not "
                                   f"supported: convert to full int8 (TFLITE_BUILTINS_INT8)")
        self.steps = [(op, _prepared(graph, op, kernels, name)) for op in graph.operators]
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise UnsupportedError(f"{name}: expected one input and one output, got "
                                   f"{len(graph.inputs)} and {len(graph.outputs)}")
        self.input, self.output = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]

    @property
    def input_quantization(self) -> tuple[float, int]:
        """(scale, zero_point) of the input tensor: ``real = scale * (q - zero_point)``."""
        return tuple(prep.scale_and_zero(self.input))

    @property
    def output_quantization(self) -> tuple[float, int]:
        """(scale, zero_point) of the output tensor."""
        return tuple(prep.scale_and_zero(self.output))

    def forward(self, q: np.ndarray, capture: bool = False):
        """Run the graph on raw input values (N, H, W, C) of the input's dtype.

        Returns the raw output, or with ``capture`` (output, {tensor name: array}) holding
        the input and every tensor an op computed.
        """
        q = np.asarray(q)
        if q.dtype != self.input.dtype or q.shape[1:] != self.input.shape[1:]:
            raise InputError(f"{self.name}: input must be {np.dtype(self.input.dtype).name} of shape "
                             f"(N, {', '.join(map(str, self.input.shape[1:]))}), got "
                             f"{q.dtype} {q.shape}")
        values = {self.graph.inputs[0]: q}
        for op, run in self.steps:
            args = [values[i] if i in values else self.graph.tensors[i].data for i in op.inputs if i >= 0]
            values[op.outputs[0]] = run(*args)
        out = values[self.graph.outputs[0]]
        if capture:
            return out, {self.graph.tensors[i].name: v for i, v in values.items()}
        return out

    def run_quantized(self, q: np.ndarray) -> np.ndarray:
        """Raw integer input -> raw integer output, in the file's dtypes."""
        return self.forward(q)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float input -> quantized with the input's (scale, zero point) -> run -> dequantized float32."""
        if self.input.quantization is not None and self.input.dtype != np.float32:
            x = ops.quantize(x, *self.input_quantization, self.input.dtype)
        out = self.forward(np.asarray(x, self.input.dtype))
        if self.output.quantization is not None and self.output.dtype != np.float32:
            return ops.dequantize(out, *self.output_quantization)
        return out


def load_tflite(path: str | Path | bytes, kernels=ops) -> TFLiteModel:
    """Read a .tflite file (path or bytes) and compile it; ``kernels=reference`` runs the loop twins."""
    name = "<bytes>" if isinstance(path, (bytes, bytearray)) else str(path)
    return TFLiteModel(read_tflite(path), name, kernels)
