"""``load_tflite``: run a .tflite MobileNet with NumPy, its integer ops bit for bit as TFLite's.

    model = mnp.load_tflite("mobilenet_v1_1.0_224_quant.tflite")
    out = model.forward(x)                       # the input exactly as the file declares it
    probs = model.predict(pixels)                # 0-255 pixels, the file's own preprocessing
    out, tensors = model.forward(x, capture=True)   # every intermediate, by tensor name

Each op runs on the tier its tensors ask for: int8 and uint8 ops on the integer kernels
(``ops``, or the loop twins ``reference``), float32 ops on the package's float kernels
(``float_graph``), shape ops on any type. Mixed files (a uint8 QUANTIZE around an int8 body,
a float DEQUANTIZE at the end) run as the file says.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..checks import PIXELS, check_input
from ..errors import InputError, MobileNetError, UnsupportedError, WeightsError
from ..imagenet import preprocess_input
from ..lanes import cpu_cores, run_in_lanes
from ..shapes import as_float32
from . import graph as prep
from . import ops
from .fixedpoint import Requantize, quantize_multiplier
from .float_graph import FLOAT_PREPARE, float_kernels, is_hybrid, prepare_hybrid
from .metadata import file_metadata, packed_labels
from .tflite_file import Graph, Operator, read_tflite

PIXELS_ABOVE = 2.0  # an int8 input whose real range reaches past this takes pixels (MobileNetV3)
SCALED_INPUT = (-1.0, 1.0)  # a float input without metadata: the MobileNet convention


def _constant(graph: Graph, index: int, op: Operator) -> np.ndarray:
    data = graph.tensors[index].data
    if data is None:
        raise UnsupportedError(f"{op.opcode} (op {op.index}) needs a constant input {index}")
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
        raise UnsupportedError(f"STRIDED_SLICE with ellipsis or new-axis masks is not supported "
                               f"(op {op.index})")

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
    """float32 -> int8/uint8, or a requantization between int8 and uint8 (the wrappers of TF2
    post-training quantized files: uint8 in, int8 body, uint8 out)."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    y_scale, y_zero = prep.scale_and_zero(y)
    if x.dtype == np.float32:
        return lambda q: kernels.quantize(q, y_scale, y_zero, y.dtype)
    x_scale, x_zero = prep.scale_and_zero(x)
    info = np.iinfo(y.dtype)
    out = Requantize(*quantize_multiplier(float(x_scale) / float(y_scale)), y_zero, int(info.min),
                     int(info.max), prep.ROUNDING["QUANTIZE"], y.dtype)
    return lambda q: out.apply(q.astype(np.int64) - x_zero)


def _prepare_dequantize(graph: Graph, op: Operator, kernels) -> Callable:
    """int8/uint8 -> float32; a float16 constant (float16-weights files) is widened exactly."""
    x = graph.tensors[op.inputs[0]]
    if x.dtype == np.float16:
        return lambda q: q.astype(np.float32)
    if x.quantization is not None and len(x.quantization.scale) > 1:
        raise UnsupportedError(f"DEQUANTIZE of a per-channel tensor ({x.name!r}) is not supported")
    scale, zero = prep.scale_and_zero(x)
    return lambda q: kernels.dequantize(q, scale, zero)


def _prepare_arg_max(graph: Graph, op: Operator, kernels) -> Callable:
    """ARG_MAX: the index of the largest value along the axis its second input names; ties go
    to the first, as TFLite's kernel (and np.argmax) break them. Output int32 or int64."""
    out = graph.tensors[op.outputs[0]].dtype
    return lambda x, axis: np.argmax(x, axis=int(np.asarray(axis).reshape(-1)[0])).astype(out)


# Integer ops (int8; uint8 for those in UINT8_OPS) and the ops that only move values (any type).
INTEGER_PREPARE = {
    "CONV_2D": prep.prepare_conv, "DEPTHWISE_CONV_2D": prep.prepare_conv,
    "FULLY_CONNECTED": prep.prepare_fully_connected, "ADD": prep.prepare_add, "SUB": prep.prepare_add,
    "MUL": prep.prepare_mul, "MAX_POOL_2D": prep.prepare_max_pool,
    "CONCATENATION": prep.prepare_concatenation,
    "MEAN": prep.prepare_mean, "AVERAGE_POOL_2D": prep.prepare_average_pool,
    "HARD_SWISH": prep.prepare_hard_swish, "LOGISTIC": prep.prepare_logistic,
    "SOFTMAX": prep.prepare_softmax,
}
ANY_TYPE_PREPARE = {
    "PAD": _prepare_pad, "PADV2": _prepare_pad,
    "RESHAPE": _prepare_reshape, "STRIDED_SLICE": _prepare_strided_slice,
    "TRANSPOSE": lambda g, op, k: lambda q, perm: np.transpose(q, perm),
    "SHAPE": lambda g, op, k: lambda q: np.array(q.shape, np.int32),
    "PACK": lambda g, op, k: lambda *values: np.stack(values, axis=op.options["axis"]),
    "SQUEEZE": lambda g, op, k: lambda q: np.squeeze(q, axis=op.options["squeeze_dims"] or None),
    "QUANTIZE": _prepare_quantize, "DEQUANTIZE": _prepare_dequantize, "ARG_MAX": _prepare_arg_max,
}
PREPARE = {**INTEGER_PREPARE, **ANY_TYPE_PREPARE}  # every op name this runtime runs
# uint8 kernels checked bit for bit against TFLite (tests/test_tflite_files.py); the other
# integer ops are refused on uint8 rather than run unchecked.
UINT8_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MEAN", "AVERAGE_POOL_2D",
             "SOFTMAX", "MUL", "LOGISTIC", "CONCATENATION"}
EDGE_TPU_OP = "edgetpu-custom-op"


def _step(graph: Graph, op: Operator, kernels, floats) -> Callable:
    """The function that runs one op, on the tier its output's type asks for (``floats``: the
    float ops' module, ``float_graph.float_kernels``)."""
    if op.opcode in ANY_TYPE_PREPARE:
        return ANY_TYPE_PREPARE[op.opcode](graph, op, kernels)
    out = graph.tensors[op.outputs[0]].dtype
    if out == np.float32:
        if is_hybrid(graph, op):
            return prepare_hybrid(graph, op, kernels)  # a dynamic-range file (Optimize.DEFAULT)
        if op.opcode not in FLOAT_PREPARE:
            raise UnsupportedError(f"{op.opcode} on float32 tensors is not supported")
        return FLOAT_PREPARE[op.opcode](graph, op, floats)
    if out == np.uint8 and op.opcode not in UINT8_OPS:
        raise UnsupportedError(f"{op.opcode} on uint8 tensors is not supported (uint8 runs "
                               f"{', '.join(sorted(UINT8_OPS))}): convert to full int8 "
                               f"(TFLITE_BUILTINS_INT8)")
    if out not in (np.int8, np.uint8):
        raise UnsupportedError(f"{op.opcode} giving {np.dtype(out).name} is not supported")
    return INTEGER_PREPARE[op.opcode](graph, op, kernels)


def _prepared(graph: Graph, op: Operator, kernels, floats, name: str) -> Callable:
    """One op made ready to run; a file whose op cannot be (damaged, unusual) is one line."""
    try:
        return _step(graph, op, kernels, floats)
    except MobileNetError as error:
        raise type(error)(f"{name}: op {op.index} ({op.opcode}): {error}") from None
    except Exception as error:  # noqa: BLE001
        # A damaged file reaches here with any shape of nonsense (an index out of range, a
        # zero scale, a missing option): every failure means "this op cannot run".
        raise WeightsError(f"{name}: op {op.index} ({op.opcode}) cannot be prepared, a damaged "
                           f"or unusual file ({type(error).__name__}: {error})") from None


def _check_ops(graph: Graph, name: str) -> None:
    """One line for a file with ops this runtime does not run, named as the schema names them."""
    opcodes = {op.opcode for op in graph.operators}
    if EDGE_TPU_OP in opcodes:
        raise UnsupportedError(f"{name}: compiled for the Edge TPU ({EDGE_TPU_OP}): it runs only on a "
                               f"Coral Edge TPU; give the .tflite file from before edgetpu_compiler")
    unknown = sorted(opcodes - set(PREPARE) - set(FLOAT_PREPARE))
    if unknown:
        raise UnsupportedError(f"{name}: unsupported op(s) {', '.join(unknown)}; mobilenet-np runs "
                               f"{', '.join(sorted(set(PREPARE) | set(FLOAT_PREPARE)))}")


class TFLiteModel:
    """A .tflite graph compiled to NumPy steps (NHWC, the file's dtypes)."""

    def __init__(self, graph: Graph, name: str = "<model>", kernels=ops, backend: str = "numpy",
                 float_order: str = "auto") -> None:
        self.graph, self.name, self.backend = graph, name, backend
        kernels, floats = backend_kernels(backend, kernels), float_kernels(graph, float_order)
        _check_ops(graph, name)
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise UnsupportedError(f"{name}: expected one input and one output, got "
                                   f"{len(graph.inputs)} and {len(graph.outputs)}")
        self.steps = [(op, _prepared(graph, op, kernels, floats, name)) for op in graph.operators]
        self.input, self.output = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
        self.metadata = file_metadata(graph, name)
        named = self.metadata.labels_file if self.metadata else None
        self.labels = packed_labels(graph, self.output.shape[-1], named) if self.output.shape else None

    @property
    def input_quantization(self) -> tuple[float, int]:
        """(scale, zero_point) of the input tensor: ``real = scale * (q - zero_point)``."""
        return tuple(prep.scale_and_zero(self.input))

    @property
    def output_quantization(self) -> tuple[float, int]:
        """(scale, zero_point) of the output tensor."""
        return tuple(prep.scale_and_zero(self.output))

    @property
    def takes_pixels(self) -> bool:
        """Whether the network wants [0, 255] pixels (V3 rescales itself) rather than [-1, 1].

        A uint8 input is an 8-bit image: always pixels. An int8 input's largest real value,
        ``scale * (127 - zero_point)``, is ~1 when calibrated on [-1, 1], ~255 on pixels. A
        float input takes what its metadata's normalization gives (``normalization``), else
        [-1, 1], the MobileNet convention.
        """
        if self.input.dtype == np.uint8:
            return True
        if self.input.dtype == np.float32 or self.input.quantization is None:
            return False
        scale, zero_point = self.input_quantization
        return float(scale) * (127 - zero_point) > PIXELS_ABOVE

    @property
    def normalization(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(mean, std) from the file's metadata, for a float input: it takes (pixels - mean) / std."""
        if self.metadata is None or self.metadata.mean is None:
            return None
        return self.metadata.mean, self.metadata.std

    def forward(self, q: np.ndarray, capture: bool = False):
        """Run the graph on the input exactly as the file declares it: (N, H, W, C) of its dtype.

        Returns the output exactly as TFLite's interpreter gives it, or with ``capture``
        (output, {tensor name: array}) holding the input and every tensor an op computed.
        """
        q = np.asarray(q)
        if q.dtype != self.input.dtype or q.shape[1:] != self.input.shape[1:]:
            raise InputError(f"{self.name}: input must be {np.dtype(self.input.dtype).name} of shape "
                             f"(N, {', '.join(map(str, self.input.shape[1:]))}), got "
                             f"{q.dtype} {q.shape}")
        if self.backend == "numba" and not capture:
            return run_in_lanes(self._run, q, len(q), cpu_cores())  # per-core lanes, as the float path
        return self._run(q, capture)

    def _run(self, q: np.ndarray, capture: bool = False):
        """Every step in order on one (chunk of a) batch; see ``forward``."""
        values = {self.graph.inputs[0]: q}
        for op, run in self.steps:
            args = [values[i] if i in values else self.graph.tensors[i].data for i in op.inputs if i >= 0]
            values[op.outputs[0]] = run(*args)
        out = values[self.graph.outputs[0]]
        if capture:
            return out, {self.graph.tensors[i].name: v for i, v in values.items()}
        return out

    def run_quantized(self, q: np.ndarray) -> np.ndarray:
        """Raw input -> raw output, in the file's dtypes (``forward`` without capture)."""
        return self.forward(q)

    def preprocess(self, pixels: np.ndarray, check_range: bool = True) -> np.ndarray:
        """(N, H, W, C) pixels in [0, 255] -> the input tensor, as the file takes it.

        uint8: the pixels as they are (an 8-bit image, what TFLite's apps feed). int8: the
        real values (pixels, or preprocess_input's [-1, 1]) quantized by the input's scale
        and zero point. float32: ``(pixels - mean) / std`` as the file's metadata says, else
        [-1, 1]. NaN, and values outside [0, 255], are refused.
        """
        x = as_float32("pixels", pixels, "TFLiteModel.predict")
        check_input(x, PIXELS, check_range)
        if self.input.dtype == np.uint8:
            return np.clip(np.rint(x), 0, 255).astype(np.uint8)
        if self.input.dtype == np.float32 and self.normalization is not None:
            mean, std = self.normalization
            return (x - mean) / std  # float32, per channel when the metadata gives C values
        real = x if self.takes_pixels else preprocess_input(x)
        if self.input.dtype == np.float32:
            return real
        return ops.quantize(real, *self.input_quantization, self.input.dtype)

    def predict(self, pixels: np.ndarray, check_range: bool = True) -> np.ndarray:
        """0-255 pixels (N, H, W, C) -> the file's preprocessing -> run -> float32 output
        (dequantized when the file's output is integer)."""
        out = self.forward(self.preprocess(pixels, check_range))
        if self.output.dtype in (np.int8, np.uint8):
            return ops.dequantize(out, *self.output_quantization)
        return out


def backend_kernels(backend: str, kernels=ops):
    """The kernels a backend runs: ``kernels`` (``ops``, or the loop twins) for "numpy", the
    compiled loop twins (``compiled.NumbaKernels``) for "numba"."""
    if backend == "numpy":
        return kernels
    if backend == "numba":
        from .compiled import NumbaKernels  # Numba itself is imported only for this backend

        return NumbaKernels()
    raise InputError(f"backend must be 'numpy' or 'numba', got {backend!r}")


def load_tflite(path: str | Path | bytes, kernels=ops, backend: str = "numpy",
                float_order: str = "auto") -> TFLiteModel:
    """Read a .tflite file (path or bytes) and compile it; ``kernels=reference`` runs the loop
    twins, ``backend="numba"`` the loop twins compiled (needs Numba). Float ops: ``float_order=
    "tflite"`` adds in TFLite's order (bit-exact on x86-64), ``"blas"`` on BLAS (within float32
    round-off, several times faster), ``"auto"`` the first where hybrid ops quantize their
    results (a dynamic-range file), else the second."""
    name = "<bytes>" if isinstance(path, (bytes, bytearray)) else str(path)
    return TFLiteModel(read_tflite(path), name, kernels, backend, float_order)
