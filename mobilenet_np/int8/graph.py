"""From a parsed .tflite graph to runnable steps: TFLite's "Prepare" for every op we support.

Each ``prepare_<op>`` turns the file's float scales into the integer parameters the kernel
uses, computed the way TFLite's kernel computes them (which arithmetic is float32 and which
is double matters for the last bit of a multiplier), and returns a function of the op's
run-time inputs. ``kernels`` is the module to run (``ops``, or the loop twins ``reference``).

Rounding: which ``MultiplyByQuantizedMultiplier`` each builtin kernel of the pip TensorFlow
2.21 runtime uses (x86-64, ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``) was found by replaying
every op of converted models on TFLite's own inputs under each recipe of ``fixedpoint``
and counting outputs that differ (V1 0.25, V2 0.35, V3-Small/Large 0.75, all at 96x96 with
calibrated random weights, one seeded image; counts listed V1 / V2 / V3-S / V3-L):

* CONV_2D: "double_up" 0 / 0 / 0 / 0; "double" 0 / 122 / 167 / 367 (one LSB, exact ties
  of the final shift); "single" 255 / 785 / 322 / 909. DEPTHWISE_CONV_2D: "double_up" 0
  everywhere; "double" 0 / 0 / 113 / 246; "single" 270 / 437 / 200 / 593. Ruy's x86
  kernels and the NEON-to-SSE depthwise code round the shift's ties up.
* MUL (V3-S / V3-L): "double" 0 / 0; "double_up" 127 / 160; "single" 294 / 347: the scalar
  ``common.h`` path.
* MEAN with keep_dims: whole 16-channel blocks "double_up" (vector code), the remaining
  channels "double" (scalar code), with the float32-rounded bias: 0 differences (the bias
  truncated instead of rounded: 956 / 1643 of 2248 / 3864 values off on V3-S / V3-L).
* MEAN without keep_dims (V2): the reference integer path, "double": 0 (single: 278).
* ADD, FULLY_CONNECTED: no recipe differed on these models (no ties occurred); ADD follows
  ``common.h`` ("double"), FULLY_CONNECTED the ruy path of CONV_2D.
* No op matched single rounding: the wheel is built without ``TFLITE_SINGLE_ROUNDING``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedError
from .fixedpoint import (
    Requantize,
    activation_range,
    quantize_multiplier,
    quantize_multipliers,
    round_half_away,
)
from .tflite_file import Graph, Operator, Tensor

# Measured (module docstring): the vector kernels round ties up, the scalar ones away from 0.
ROUNDING = {"CONV_2D": "double_up", "FULLY_CONNECTED": "double_up", "DEPTHWISE_CONV_2D": "double_up",
            "ADD": "double", "SUB": "double", "MUL": "double", "MEAN": "double", "QUANTIZE": "double"}
ADD_LEFT_SHIFT = 20  # int8 ADD: inputs get 20 bits of headroom before rescaling


@dataclass(frozen=True)
class AddParams:
    """Integer parameters of an int8 ADD or SUB (TFLite's PrepareGeneralSubOp / add.cc);
    ``b_sign`` is -1 for SUB, which subtracts the second scaled input instead of adding it."""

    left_shift: int
    a_zero_point: int
    a_multiplier: int
    a_shift: int
    b_zero_point: int
    b_multiplier: int
    b_shift: int
    out: Requantize
    b_sign: int = 1


@dataclass(frozen=True)
class HardSwishParams:
    """Integer parameters of an int8 HARD_SWISH: two Q15 multipliers and their exponents."""

    input_zero_point: int
    output_zero_point: int
    output_multiplier: int  # Q15, input (x 2^-7 "hi-res") scale -> output scale
    output_shift: int
    reluish_multiplier: int  # Q15, hi-res input scale -> a scale where 3.0 is 2^15
    reluish_shift: int


def scale_and_zero(tensor: Tensor) -> tuple[float, int]:
    """A per-tensor quantized tensor's (scale, zero_point); scale as float32, like TFLite's params."""
    if tensor.quantization is None:
        raise ValueError(f"tensor {tensor.name!r} is not quantized")
    return np.float32(tensor.quantization.scale[0]), int(tensor.quantization.zero_point[0])


def _in_out(graph: Graph, op: Operator) -> tuple[tuple[float, int], tuple[float, int]]:
    """(scale, zero point) of an op's first input and of its output."""
    return scale_and_zero(graph.tensors[op.inputs[0]]), scale_and_zero(graph.tensors[op.outputs[0]])


def _clamp(op: Operator, out: Tensor) -> tuple[int, int]:
    """The fused activation as a clamp in the output's type (int8, or uint8)."""
    return activation_range(op.options.get("fused_activation_function", "NONE"), *scale_and_zero(out),
                            out.dtype)


def _int16_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier then DownScaleInt32ToInt16Multiplier: a Q15 multiplier and shift."""
    multiplier, shift = quantize_multiplier(real)
    if multiplier >= 2**31 - 1 - 2**15:
        return 2**15 - 1, shift
    return (multiplier + 2**15) >> 16, shift


def centred_weights(w: Tensor) -> np.ndarray:
    """The weights minus their zero point, as the kernels multiply them.

    int8 weights are symmetric (zero point 0: TFLite requires it) and stay int8. uint8
    weights (Jacob et al. 2018) have one nonzero zero point per tensor: TFLite's uint8
    kernels add ``filter_offset = -zero_point`` to every weight; here that is done once, at
    load, giving int32 values in [-255, 255].
    """
    if w.dtype == np.int8:
        return w.data
    return w.data.astype(np.int32) - int(w.quantization.zero_point[0])


def _weighted_operands(graph: Graph, op: Operator):
    """What CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED share: the centred weights, the
    output, the optional int32 bias (int64 here, or None), the input's zero point, the
    output's, and the real multipliers ``x_scale * w_scale / y_scale`` in double, as TFLite's
    kernel_util (per channel or one)."""
    x, w, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    b = graph.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    x_scale, x_zero = scale_and_zero(x)
    y_scale, y_zero = scale_and_zero(y)
    real = np.float64(x_scale) * w.quantization.scale.astype(np.float64) / np.float64(y_scale)
    bias = None if b is None else b.data.astype(np.int64)
    return centred_weights(w), y, bias, x_zero, y_zero, real


def prepare_conv(graph: Graph, op: Operator, kernels) -> Callable:
    """CONV_2D and DEPTHWISE_CONV_2D: per-channel multipliers in double, as TFLite's kernel_util."""
    w, y, bias, x_zero, y_zero, real = _weighted_operands(graph, op)
    if len(real) == 1:
        real = np.repeat(real, y.shape[-1])
    out = Requantize(*quantize_multipliers(real), y_zero, *_clamp(op, y), ROUNDING[op.opcode], y.dtype)
    o = op.options
    if (o["dilation_h_factor"], o["dilation_w_factor"]) != (1, 1):
        raise UnsupportedError(f"{op.opcode} with dilation is not supported (op {op.index})")
    stride = (o["stride_h"], o["stride_w"])
    bias = np.zeros(y.shape[-1], np.int64) if bias is None else bias  # the bias is optional
    if op.opcode == "CONV_2D":
        return lambda q, *_: kernels.conv2d(q, x_zero, w, bias, out, stride, o["padding"])
    return lambda q, *_: kernels.depthwise_conv2d(q, x_zero, w, bias, out, stride, o["padding"],
                                              o["depth_multiplier"])


def prepare_fully_connected(graph: Graph, op: Operator, kernels) -> Callable:
    """FULLY_CONNECTED: input flattened to (N, Cin); per-tensor or per-channel weights."""
    w, y, bias, x_zero, y_zero, real = _weighted_operands(graph, op)
    multiplier, shift = quantize_multipliers(real)
    out = Requantize(multiplier if len(real) > 1 else multiplier[0], shift if len(real) > 1 else shift[0],
                     y_zero, *_clamp(op, y), ROUNDING["FULLY_CONNECTED"], y.dtype)
    cin = w.shape[1]

    def run(q, *_):
        flat = q.reshape(-1, cin)  # (N, ..., Cin) -> (N', Cin)
        result = kernels.fully_connected(flat, x_zero, w, bias, out)  # (N', Cout)
        return result.reshape(*q.shape[:-1], -1) if op.options["keep_num_dims"] else result
    return run


def prepare_add(graph: Graph, op: Operator, kernels) -> Callable:
    """ADD and SUB: both inputs rescaled to twice the larger input scale, then to the output."""
    (a_scale, a_zero), (b_scale, b_zero), (y_scale, y_zero) = (
        scale_and_zero(graph.tensors[i]) for i in (*op.inputs, op.outputs[0]))
    twice_max = 2 * float(max(a_scale, b_scale))
    pairs = [quantize_multiplier(float(a_scale) / twice_max), quantize_multiplier(float(b_scale) / twice_max),
             quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * float(y_scale)))]
    y = graph.tensors[op.outputs[0]]
    out = Requantize(*pairs[2], y_zero, *_clamp(op, y), ROUNDING["ADD"], y.dtype)
    params = AddParams(ADD_LEFT_SHIFT, a_zero, *pairs[0], b_zero, *pairs[1], out,
                       -1 if op.opcode == "SUB" else 1)
    return lambda a, b: kernels.add(a, b, params)


def prepare_mul(graph: Graph, op: Operator, kernels) -> Callable:
    """MUL: one multiplier for a_scale * b_scale / out_scale, computed in double."""
    (a_scale, a_zero), (b_scale, b_zero), (y_scale, y_zero) = (
        scale_and_zero(graph.tensors[i]) for i in (*op.inputs, op.outputs[0]))
    multiplier, shift = quantize_multiplier(float(a_scale) * float(b_scale) / float(y_scale))
    y = graph.tensors[op.outputs[0]]
    out = Requantize(multiplier, shift, y_zero, *_clamp(op, y), ROUNDING["MUL"], y.dtype)
    return lambda a, b: kernels.mul(a, a_zero, b, b_zero, out)


def prepare_mean(graph: Graph, op: Operator, kernels) -> Callable:
    """MEAN: the optimized kernel for (1, 2) with keep_dims on 4-D int8, else the reference one.

    Optimized (as reduce.cc picks it): float32 ``in_scale / (H * W * out_scale)`` as one
    multiplier, zero points folded into an int32 bias rounded from float32. Reference: the
    double in/out multiplier, then TFLite divides the multiplier itself by the element count:
    ``m' = (m << k) // count``, shift - k, with k = min(floor(log2 count), 32, 31 + shift).
    """
    x, axis, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    if axis.data is None:
        raise UnsupportedError(f"MEAN needs constant axes (op {op.index})")
    axes = tuple(sorted({int(a) % len(x.shape) for a in axis.data.ravel()}))
    (x_scale, x_zero), (y_scale, y_zero) = scale_and_zero(x), scale_and_zero(y)
    if op.options["keep_dims"] and len(x.shape) == 4 and axes == (1, 2):
        count = np.float32(x.shape[1] * x.shape[2])
        multiplier, shift = quantize_multiplier(float(x_scale / (count * y_scale)))
        # rounded, on uint8 too (truncating it was 96 of 96 values off, tests/test_tflite_files.py)
        bias = y_zero - int(round_half_away(np.float32(x_zero) * x_scale / y_scale))
        return lambda q, *_: kernels.mean_hw(q, multiplier, shift, bias, y.dtype)
    count = int(np.prod([x.shape[a] for a in axes]))
    multiplier, shift = quantize_multiplier(float(x_scale) / float(y_scale))
    k = min(count.bit_length() - 1, 32, 31 + shift)
    info = np.iinfo(y.dtype)
    out = Requantize((multiplier << k) // count, shift - k, y_zero, int(info.min), int(info.max),
                     ROUNDING["MEAN"], y.dtype)
    return lambda q, *_: kernels.mean(q, x_zero, axes, out, op.options["keep_dims"])


def prepare_hard_swish(graph: Graph, op: Operator, kernels) -> Callable:
    """HARD_SWISH: float32 scale ratios (as TFLite's HardSwishPrepare) to two Q15 multipliers."""
    (x_scale, x_zero), (y_scale, y_zero) = _in_out(graph, op)
    hires_scale = np.float32(1.0 / 128.0) * x_scale
    output = _int16_multiplier(float(hires_scale / y_scale))
    reluish = _int16_multiplier(float(hires_scale / np.float32(3.0 / 32768.0)))
    if output[1] > 0:
        raise UnsupportedError(f"HARD_SWISH output scale too small for TFLite's recipe (op {op.index})")
    params = HardSwishParams(x_zero, y_zero, output[0], output[1], reluish[0], reluish[1])
    return lambda q, *_: kernels.hard_swish(q, params)


def prepare_logistic(graph: Graph, op: Operator, kernels) -> Callable:
    """LOGISTIC: a 256-entry int8 (or uint8) table, each entry computed in float32 as
    TFLite's LUTPopulate. ``lookup`` reads ``table[q + 128]``: a uint8 input is moved down
    by 128 first, so that uint8 value q reads entry q."""
    (x_scale, x_zero), (y_scale, y_zero) = _in_out(graph, op)
    info = np.iinfo(graph.tensors[op.outputs[0]].dtype)
    q = np.arange(info.min, info.max + 1)
    real = x_scale * (q - x_zero).astype(np.float32)  # float32
    sigmoid = np.float32(1.0) / (np.float32(1.0) + _expf(-real))
    rounded = round_half_away(sigmoid * (np.float32(1.0) / y_scale))
    table = np.clip(rounded.astype(np.int64) + y_zero, info.min, info.max).astype(info.dtype)
    if info.min == 0:
        return lambda x, *_: kernels.lookup(x.astype(np.int16) - 128, table)
    return lambda x, *_: kernels.lookup(x, table)


def _expf(x: np.ndarray) -> np.ndarray:
    """C's expf: exp in float64, rounded once to float32 (correctly rounded; glibc agrees)."""
    return np.exp(np.asarray(x, np.float32).astype(np.float64)).astype(np.float32)


def prepare_softmax(graph: Graph, op: Operator, kernels) -> Callable:
    """SOFTMAX: table[d] = expf(-input_scale * beta * d), d = max - q, in float32."""
    (x_scale, _), (y_scale, y_zero) = _in_out(graph, op)
    scale = -x_scale * np.float32(op.options["beta"])
    table = _expf(scale * np.arange(256, dtype=np.float32))
    dtype = graph.tensors[op.outputs[0]].dtype
    return lambda q, *_: kernels.softmax(q, table, y_scale, y_zero, dtype)


def prepare_max_pool(graph: Graph, op: Operator, kernels) -> Callable:
    """MAX_POOL_2D: input and output share scale and zero point; only the clamp is prepared."""
    o, y = op.options, graph.tensors[op.outputs[0]]
    lo, hi = _clamp(op, y)
    return lambda q: kernels.max_pool2d(q, (o["filter_height"], o["filter_width"]),
                                        (o["stride_h"], o["stride_w"]), o["padding"], lo, hi)


def prepare_concatenation(graph: Graph, op: Operator, kernels) -> Callable:
    """CONCATENATION: TFLite requires int8 inputs on the output's scale and zero point; uint8
    inputs on other scales are requantized in float32 (TFLite's ConcatenationWithScaling)."""
    y = graph.tensors[op.outputs[0]]
    if op.options["fused_activation_function"] != "NONE":
        raise UnsupportedError(f"CONCATENATION with a fused activation (op {op.index})")
    (y_scale, y_zero), axis = scale_and_zero(y), op.options["axis"]
    inputs = [scale_and_zero(graph.tensors[i]) for i in op.inputs]
    if all(pair == (y_scale, y_zero) for pair in inputs):
        return lambda *parts: np.concatenate(parts, axis=axis)
    if y.dtype != np.uint8:
        raise UnsupportedError(f"CONCATENATION of int8 inputs on other scales than its output's "
                               f"(op {op.index})")
    inverse = np.float32(1.0) / y_scale
    # per input, float32: scale = in_scale / out_scale, bias = -in_zero_point * scale (as TFLite's)
    rescales = [None if (scale, zero) == (y_scale, y_zero)
                else (scale * inverse, np.float32(-zero) * (scale * inverse)) for scale, zero in inputs]

    def run(*parts):
        return np.concatenate([part if rescale is None else kernels.rescale_uint8(part, *rescale, y_zero)
                               for part, rescale in zip(parts, rescales, strict=True)], axis=axis)
    return run


def prepare_average_pool(graph: Graph, op: Operator, kernels) -> Callable:
    """AVERAGE_POOL_2D: input and output share scale and zero point; only the clamp is prepared."""
    o, y = op.options, graph.tensors[op.outputs[0]]
    lo, hi = _clamp(op, y)
    return lambda q, *_: kernels.average_pool2d(q, (o["filter_height"], o["filter_width"]),
                                            (o["stride_h"], o["stride_w"]), o["padding"], lo, hi, y.dtype)
