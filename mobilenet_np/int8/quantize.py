"""``mnp.quantize``: our own post-training quantization of a float ``Network`` to an int8 graph.

    q_model = mnp.quantize(model, calibration_images)   # a TFLiteModel, as load_tflite returns
    probs = q_model.predict(x)

No structure is re-derived here: the fused plan's units (``model.plan``, plain data) already
are TFLite's ops, one unit each (a conv unit with BN folded in is one CONV_2D or
DEPTHWISE_CONV_2D with a fused activation; a residual is one ADD; squeeze-excite is MEAN,
CONV_2D, CONV_2D, MUL, MUL). Each unit is lowered to those ops by its ``op``, its folded
weights quantized per channel, activations quantized per tensor from their min/max over the
calibration images (``calibrate.py``), and the result is a ``tflite_file.Graph``, the same
object the .tflite reader makes: ``TFLiteModel`` runs it with the integer kernels that equal
TFLite's (``run_quantized``, ``predict``, ``forward(capture=True)``). Tensors are named
after the layers whose output they hold, so a captured int8 tensor sits beside
``model.forward(x, capture=True)``'s float one of the same name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError, UnsupportedError
from ..plan import Unit
from ..shapes import resolve_padding
from .calibrate import RangeTracker, quantize_bias, scalar_constant, symmetric_per_channel
from .model import TFLiteModel
from .tflite_file import Graph, Operator, Quantization, Tensor

if TYPE_CHECKING:  # model.py imports the whole float package; only the annotation needs it
    from ..model import Network

SOFTMAX_OUTPUT = (np.float32(1 / 256), -128)  # TFLite's fixed int8 softmax output: [0, 1)
RESCALE = (np.float32(1 / 127.5), np.float32(-1.0))  # Keras's Rescaling in MobileNetV3
FUSED = {"relu6": "RELU6", "relu": "RELU", None: "NONE"}  # activations a conv op can clamp to


class GraphBuilder:
    """Appends int8 tensors and ops; activation tensors take their calibrated (scale, zero point)."""

    def __init__(self, ranges: RangeTracker) -> None:
        self.ranges = ranges
        self.tensors: list[Tensor] = []
        self.operators: list[Operator] = []
        self.index: dict[str, int] = {}

    def tensor(self, name: str, shape: tuple[int, ...], dtype=np.int8, scale=None, zero_point=None,
               data: np.ndarray | None = None, axis: int = 0) -> str:
        """Add a tensor; quantization defaults to the calibrated range of ``name``."""
        if scale is None:
            scale, zero_point = self.ranges.parameters(name)
        scales = np.atleast_1d(np.asarray(scale, np.float32))
        zeros = np.broadcast_to(np.asarray(zero_point, np.int64), scales.shape).copy()
        self.index[name] = len(self.tensors)
        self.tensors.append(Tensor(len(self.tensors), name, tuple(shape), dtype,
                                   Quantization(scales, zeros, axis), data))
        return name

    def shape_constant(self, name: str, data: np.ndarray) -> str:
        """An int32 constant that is not a quantized value (MEAN's axes)."""
        self.index[name] = len(self.tensors)
        self.tensors.append(Tensor(len(self.tensors), name, data.shape, np.int32, None, data))
        return name

    def quantization(self, name: str) -> tuple[np.float32, int]:
        q = self.tensors[self.index[name]].quantization
        return q.scale[0], int(q.zero_point[0])

    def shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[self.index[name]].shape

    def op(self, opcode: str, inputs: list[str], output: str, **options) -> str:
        self.operators.append(Operator(len(self.operators), opcode, tuple(self.index[i] for i in inputs),
                                       (self.index[output],), options))
        return output

    def constant(self, name: str, value: float) -> str:
        """A scalar int8 operand of MUL or ADD."""
        q, scale, zero_point = scalar_constant(value)
        return self.tensor(name, (), scale=scale, zero_point=zero_point, data=q)

    def weights(self, name: str, kernel: np.ndarray, bias: np.ndarray, x: str, axis: int) -> list[str]:
        """int8 kernel, per channel along ``axis``, and its int32 bias at input x weight scale."""
        input_scale = self.quantization(x)[0]
        q, scales = symmetric_per_channel(kernel, axis, bias, input_scale)
        q_bias, bias_scales = quantize_bias(bias, input_scale, scales)
        return [self.tensor(f"{name}/kernel", q.shape, scale=scales, zero_point=0, data=q, axis=axis),
                self.tensor(f"{name}/bias", q_bias.shape, np.int32, bias_scales, 0, q_bias)]


def _conv_options(padding: str, stride: int, activation: str | None) -> dict:
    return {"padding": padding, "stride_w": stride, "stride_h": stride,
            "fused_activation_function": FUSED[activation], "dilation_w_factor": 1,
            "dilation_h_factor": 1}


def _padding(b: GraphBuilder, x: str, unit: Unit) -> str:
    """TFLite's SAME or VALID for the unit's pads (Keras's stride-2 padding is SAME on even sizes)."""
    in_hw, k, layer = b.shape(x)[1:3], unit.kernel.shape[:2], unit.conv
    pads = tuple(tuple(int(p) for p in pair) for pair in unit.pads)  # ((top, bottom), (left, right))
    if pads == resolve_padding("same", in_hw, k, (unit.stride,) * 2, layer.name):
        return "SAME"
    if not any(any(p) for p in pads):
        return "VALID"
    raise UnsupportedError(f"int8 quantization needs TFLite's SAME or VALID padding; {layer.name} pads "
                     f"{pads} on a {in_hw[0]}x{in_hw[1]} input (an odd size at stride 2): use a "
                     f"resolution that stays even, such as 224")


def lower_conv_unit(b: GraphBuilder, unit: Unit, x: str) -> str:
    """A conv unit (BN already folded) -> CONV_2D or DEPTHWISE_CONV_2D (+ HARD_SWISH, not a clamp)."""
    conv, kernel, activation = unit.conv, unit.kernel, unit.activation
    if activation not in (*FUSED, "hard_swish"):
        raise UnsupportedError(f"int8 quantization has no {activation} after {conv.name}")
    padding = _padding(b, x, unit)
    fused = None if activation == "hard_swish" else activation
    out = unit.covers[-2].name if activation == "hard_swish" else unit.name
    b.tensor(out, (1, *conv.output_shape))
    if unit.op == "depthwise":  # (kh, kw, C, M) -> TFLite's (1, kh, kw, C * M): channel c * M + m
        weights = b.weights(conv.name, kernel.reshape(1, *kernel.shape[:2], -1), unit.bias, x, axis=3)
        b.op("DEPTHWISE_CONV_2D", [x, *weights], out, **_conv_options(padding, unit.stride, fused),
             depth_multiplier=kernel.shape[3])
    else:  # (kh, kw, Cin, Cout) -> TFLite's (Cout, kh, kw, Cin)
        weights = b.weights(conv.name, kernel.transpose(3, 0, 1, 2), unit.bias, x, axis=0)
        b.op("CONV_2D", [x, *weights], out, **_conv_options(padding, unit.stride, fused))
    if activation == "hard_swish":
        out = b.op("HARD_SWISH", [out], b.tensor(unit.name, (1, *conv.output_shape)))
    return out


def _mean(b: GraphBuilder, x: str, name: str) -> str:
    """Global average pooling as MEAN over H, W with keep_dims (TFLite's optimized kernel)."""
    axes = b.shape_constant(f"{name}/axes", np.array([1, 2], np.int32))
    return b.op("MEAN", [x, axes], b.tensor(name, (1, 1, 1, b.shape(x)[3])), keep_dims=True)


def _pointwise(b: GraphBuilder, x: str, name: str, matrix: np.ndarray, bias: np.ndarray, out: str,
               activation: str | None) -> str:
    """A 1x1 conv on (1, 1, 1, Cin): matrix (Cin, Cout) -> kernel (Cout, 1, 1, Cin)."""
    b.tensor(out, (1, 1, 1, matrix.shape[1]))
    weights = b.weights(name, matrix.T.reshape(matrix.shape[1], 1, 1, -1), bias, x, axis=0)
    return b.op("CONV_2D", [x, *weights], out, **_conv_options("VALID", 1, activation))


def lower_squeeze_excite(b: GraphBuilder, unit: Unit, x: str) -> str:
    """pool, conv, relu, conv, hard_sigmoid, multiply -> MEAN, CONV_2D (RELU), CONV_2D (RELU6
    on z + 3: the bias takes the 3), MUL by 1/6, MUL: hard_sigmoid(z) = relu6(z + 3) / 6."""
    pool, multiply = unit.covers[0], unit.covers[-1]
    squeeze, excite = unit.stages
    hidden = _pointwise(b, _mean(b, x, pool.name), squeeze.layer.name, squeeze.matrix, squeeze.bias,
                        squeeze.output, "relu")
    six_gate = _pointwise(b, hidden, excite.layer.name, excite.matrix, excite.bias + np.float32(3.0),
                          f"{excite.output}/relu6", "relu6")
    gated = b.op("MUL", [six_gate, b.constant(f"{excite.output}/one_sixth", 1 / 6)],
                 b.tensor(excite.output, b.shape(six_gate)), fused_activation_function="NONE")
    return b.op("MUL", [x, gated], b.tensor(multiply.name, b.shape(x)), fused_activation_function="NONE")


def lower_residual(b: GraphBuilder, unit: Unit, x: str) -> str:
    """The shortcut: ADD(block input, projection)."""
    return b.op("ADD", [unit.source, x], b.tensor(unit.name, b.shape(x)), fused_activation_function="NONE")


def lower_rescale(b: GraphBuilder, unit: Unit, x: str) -> str:
    """Keras's Rescaling: MUL by 1/127.5, ADD -1, as the converter leaves it."""
    scaled = b.op("MUL", [x, b.constant(f"{unit.name}/scale", RESCALE[0])],
                  b.tensor(f"{unit.name}/mul", b.shape(x)), fused_activation_function="NONE")
    return b.op("ADD", [scaled, b.constant(f"{unit.name}/offset", RESCALE[1])],
                b.tensor(unit.name, b.shape(x)), fused_activation_function="NONE")


def lower_head(b: GraphBuilder, unit: Unit, x: str) -> str:
    """MEAN, then each stage as CONV_2D 1x1 (classifier, conv) or FULLY_CONNECTED (dense), with
    HARD_SWISH as its own op; RESHAPE to the model's output shape; SOFTMAX at a fixed scale."""
    if unit.pool != "avg":
        raise UnsupportedError("int8 quantization supports global average pooling only (TFLite has "
                               "no int8 global max pool op here)")
    x = _mean(b, x, unit.covers[0].name)
    for stage in unit.stages:
        if stage.activation not in (*FUSED, "hard_swish"):
            raise UnsupportedError(f"int8 quantization has no {stage.activation} after "
                                   f"{stage.layer.name}")
        clamp = stage.activation if stage.activation in FUSED else None
        out = stage.output if clamp else stage.layer.name
        if stage.layer.kind == "dense":  # (Cin, Cout) -> (Cout, Cin); the input flattens to (1, Cin)
            b.tensor(out, (1, stage.matrix.shape[1]))
            weights = b.weights(stage.layer.name, stage.matrix.T, stage.bias, x, axis=0)
            x = b.op("FULLY_CONNECTED", [x, *weights], out, fused_activation_function=FUSED[clamp],
                     weights_format=0, keep_num_dims=False)
        else:
            x = _pointwise(b, x, stage.layer.name, stage.matrix, stage.bias, out, clamp)
        if stage.activation == "hard_swish":
            x = b.op("HARD_SWISH", [x], b.tensor(stage.output, b.shape(x)))
    last = unit.covers[-1]
    features = last.input_shape if last.kind == "softmax" else last.output_shape
    if b.shape(x)[1:] != tuple(features):
        x = b.op("RESHAPE", [x], b.tensor(f"{x}/reshape", (1, *features), scale=b.quantization(x)[0],
                                          zero_point=b.quantization(x)[1]), new_shape=(-1, *features))
    if last.kind == "softmax":
        x = b.op("SOFTMAX", [x], b.tensor(last.name, b.shape(x), scale=SOFTMAX_OUTPUT[0],
                                          zero_point=SOFTMAX_OUTPUT[1]), beta=1.0)
    return x


def lower_unsupported(b: GraphBuilder, unit: Unit, x: str) -> str:
    raise UnsupportedError(f"int8 quantization has no lowering for the layers "
                           f"{[layer.kind for layer in unit.covers]} ({unit.name})")


# How each op of ``plan.Unit`` becomes TFLite ops.
LOWER: dict[str, Callable[[GraphBuilder, Unit, str], str]] = {
    "conv": lower_conv_unit, "depthwise": lower_conv_unit, "squeeze_excite": lower_squeeze_excite,
    "add": lower_residual, "rescale": lower_rescale, "head": lower_head, "layers": lower_unsupported,
    "attention": lower_unsupported,
}


def calibrate(model: Network, images: np.ndarray, batch_size: int = 4) -> RangeTracker:
    """min/max of the input and of every layer's float output over the calibration images.

    Also the two tensors the lowering adds that no layer outputs: Rescaling's product
    (input / 127.5) and squeeze-excite's relu6(z + 3) (= 6 x the hard-sigmoid's output).
    """
    ranges = RangeTracker()
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        _, outputs = model.forward(chunk, capture=True)
        ranges.update("input", chunk)
        for unit in model.plan:
            if unit.op == "rescale":
                ranges.update(f"{unit.name}/mul", chunk * RESCALE[0])
            if unit.op == "squeeze_excite":
                gate = unit.stages[1].output
                ranges.update(f"{gate}/relu6", outputs[gate] * np.float32(6.0))
        for name, values in outputs.items():
            ranges.update(name, values)
    return ranges


def quantize(model: Network, calibration_images: np.ndarray, batch_size: int = 4,
             backend: str | None = None) -> TFLiteModel:
    """A float ``Network`` -> an int8 ``TFLiteModel`` (full integer: int8 input and output).

    calibration_images: (N, H, W, 3) as ``model.forward`` takes them (N >= 1). Per-channel
    symmetric int8 weights, per-tensor asymmetric int8 activations from min/max over these
    images, int32 biases; run by the same runtime as ``load_tflite``'s models, on ``backend``
    ("numpy" or "numba"; default: the float model's).
    """
    images = model.check_input(calibration_images)
    if len(images) == 0:
        raise InputError("quantize needs at least one calibration image, got none")
    ranges = calibrate(model, images, batch_size)
    b = GraphBuilder(ranges)
    x = b.tensor("input", (1, *model.input_shape))
    for unit in model.plan:
        x = LOWER[unit.op](b, unit, x)
    graph = Graph(b.tensors, b.operators, (0,), (b.index[x],))
    made = model.graph.model_name if model.family is None else f"{model.family.name} alpha {model.alpha}"
    name = f"{made} int8 (mnp.quantize)"  # a family's model, or a Keras file's (GraphModel)
    return TFLiteModel(graph, name, backend=backend or model.backend)
