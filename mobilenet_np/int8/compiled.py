"""The ``numba`` backend of the integer runtime: ``reference.py``'s loop cores, compiled.

``load_tflite(path, backend="numba")`` (and ``mnp.quantize(..., backend="numba")``) runs its
ops with a ``NumbaKernels``: the kernel functions of ``ops``, same arguments, same results bit
for bit (tests/test_int8_numba.py), each running a loop core of ``reference.py`` compiled by
Numba: the loops you read are the loops that run.

- DEPTHWISE_CONV_2D, MEAN, AVERAGE_POOL_2D, LOGISTIC (its table), SOFTMAX: ``reference.py``'s
  own wrapper, its ``*_loop`` core compiled (int8 and uint8); HARD_SWISH the same, run once on
  all 256 int8 inputs when first called, then looked up; ADD/SUB and MUL likewise, run once on
  all 256 x 256 pairs of inputs (``_pair_op``);
- CONV_2D, FULLY_CONNECTED: an exact float32 matrix product (BLAS, the weights made float32
  once; why it is exact: ``_exact_matmul``, docs/int8.md) of the compiled ``centre_loop``'s
  x - zero point, after an im2col gather for kernels larger than 1 x 1, then the compiled
  ``requantize_loop``: bias, per-channel multiplier and shift, zero point and clamp in one pass
  (in float64, exactly: ``requantize_in_float64``, which vectorises where int64 does not);
- everything else (``NUMPY_KERNELS``: MAX_POOL_2D, PAD, QUANTIZE, DEQUANTIZE; float ops run on
  the float kernels anyway): the NumPy kernel of ``ops``, unchanged.

Compiled in nopython mode with the GIL released, so a batch runs in lanes (``lanes.run_in_lanes``),
and cached on disk beside ``reference.py``: the first call in a fresh install compiles.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable

import numpy as np

from ..errors import MissingDependencyError
from ..shapes import resolve_padding
from . import ops, reference
from .fixedpoint import Requantize

# Compiled, in the order they call each other (the scalar helpers first).
CORES = ("_c_div", "_c_div_pot", "srdhm", "rdbpot", "mbqm", "requantize", "requantize_in_float64",
         "depthwise_loop", "requantize_loop",
         "centre_loop", "add_loop", "mul_loop", "mean_hw_loop", "mean_loop", "average_pool_loop",
         "hard_swish_loop", "lookup_loop", "lookup_byte_loop", "lookup_pair_loop", "softmax_loop")
# reference.py's wrappers, run as they are, calling the compiled cores.
WRAPPERS = ("depthwise_staged", "add", "mul", "mean_hw", "mean", "average_pool2d", "hard_swish",
            "lookup", "softmax")
# No compiled twin: these run ops.py's NumPy kernel (one pass of NumPy each, or float work).
NUMPY_KERNELS = ("max_pool2d", "pad", "quantize", "dequantize", "rescale_uint8")
FLOAT32_EXACT = 2**24  # float32 holds every integer of magnitude up to this


@functools.cache
def compiled_namespace() -> dict:
    """A copy of ``reference.py``'s globals with every core of CORES compiled by Numba.

    Each core is compiled from its own code object, unchanged; the names it calls resolve to
    the compiled versions through this shared namespace.
    """
    try:
        import numba
    except ImportError:
        raise MissingDependencyError("backend 'numba' needs Numba: pip install "
                                     "'mobilenet-np[jit]'") from None
    namespace = dict(vars(reference))
    for name in (*CORES, *WRAPPERS):
        original = getattr(reference, name)
        twin = types.FunctionType(original.__code__, namespace, name, original.__defaults__)
        twin.__qualname__, twin.__module__, twin.__doc__ = (original.__qualname__, original.__module__,
                                                           original.__doc__)
        namespace[name] = numba.njit(cache=True, nogil=True)(twin) if name in CORES else twin
    return namespace


class NumbaKernels:
    """The ``ops`` kernels of one model, compiled (module docstring). It keeps what it prepares
    once per constant (float32 weight matrices, output stages), keyed by the constant itself."""

    def __init__(self) -> None:
        namespace = compiled_namespace()
        self.cores = types.SimpleNamespace(**{name: namespace[name] for name in CORES})
        self.twins = types.SimpleNamespace(**{name: namespace[name] for name in WRAPPERS})
        for name in WRAPPERS:
            if not hasattr(type(self), name):  # hard_swish: a method below, over its table
                setattr(self, name, namespace[name])
        for name in NUMPY_KERNELS:
            setattr(self, name, getattr(ops, name))
        self._prepared: dict[tuple[str, int], tuple[object, object]] = {}

    def _once(self, what: str, constant: object, make: Callable[[], object]) -> object:
        """``make()``, computed the first time ``what`` is asked of ``constant`` (an array, a
        Requantize), which is kept alongside so that its id stays its own. Keys name a type by
        its one-letter code (``dtype.char``): ``str(dtype)`` takes 10 us, as long as a small op."""
        held = self._prepared.get((what, id(constant)))
        if held is None or held[0] is not constant:
            held = self._prepared[what, id(constant)] = (constant, make())
        return held[1]

    def _product(self, x: np.ndarray, x_zero_point: int, weights: np.ndarray, bias: np.ndarray | None,
                 out: Requantize) -> np.ndarray:
        """(P, K) inputs -> (P, Cout) outputs of CONV_2D and FULLY_CONNECTED: x - zp (compiled),
        the exact matmul (BLAS), then bias and requantization (compiled), one pass each."""
        x, channels = np.ascontiguousarray(x), len(weights)
        centred = np.empty(x.shape, np.float32)  # (P, K), exact
        self.cores.centre_loop(x, x_zero_point, centred)
        sums = self._exact_matmul(centred, x.dtype, x_zero_point, weights)  # (P, Cout)
        y = np.empty(sums.shape, out.dtype)
        self.cores.requantize_loop(sums, *self._stage(out, channels, bias), y)
        return y

    def _stage(self, out: Requantize, channels: int, bias: np.ndarray | None) -> tuple:
        """A layer's bias and ``Requantize`` as the cores take them (``float64_stage``), made once."""
        return self._once(f"stage, bias {id(bias)}", out,  # bias: a constant of the graph, kept by it
                          lambda: reference.float64_stage(out, channels, bias))

    def depthwise_conv2d(self, x: np.ndarray, x_zero_point: int, kernel: np.ndarray, bias: np.ndarray,
                         out: Requantize, stride: tuple[int, int] = (1, 1), padding: str = "SAME",
                         depth_multiplier: int = 1) -> np.ndarray:
        """DEPTHWISE_CONV_2D: ``reference.py``'s loops, their float64 stage made once per layer."""
        return self.twins.depthwise_staged(x, x_zero_point, kernel, self._stage(out, kernel.shape[3], bias),
                                           out.dtype, stride, padding, depth_multiplier)

    def _matrix(self, weights: np.ndarray) -> np.ndarray:
        """(Cout, ...) weights as the (K, Cout) float32 matrix BLAS multiplies, made once."""
        return self._once("matrix", weights, lambda: weights.reshape(len(weights), -1).T.astype(np.float32))

    def _exact_matmul(self, centred: np.ndarray, dtype: type, x_zero_point: int,
                      weights: np.ndarray) -> np.ndarray:
        """(P, K) integers x - zp, held in float32, @ (Cout, K) weights, exactly: (P, Cout) float32/64.

        float32 holds every integer up to 2^24, so a float32 matmul over k terms is exact when
        k * max|x - zp| * max|w| <= 2^24 (docs/int8.md): K is cut into such chunks (one, for
        K <= 512 with int8 weights), whose exact float32 sums are added in float64 (exact too).
        """
        matrix = self._matrix(weights)  # (K, Cout)
        chunk = self._once(f"chunk for {np.dtype(dtype).char} at {x_zero_point}",
                           weights,  # weights may be shared
                           lambda: FLOAT32_EXACT // largest_product(dtype, x_zero_point, weights))
        if len(matrix) <= chunk:
            return centred @ matrix
        sums = np.zeros((len(centred), matrix.shape[1]), np.float64)
        for start in range(0, len(matrix), chunk):
            sums += centred[:, start:start + chunk] @ matrix[start:start + chunk]
        return sums

    def conv2d(self, x: np.ndarray, x_zero_point: int, kernel: np.ndarray, bias: np.ndarray,
               out: Requantize, stride: tuple[int, int] = (1, 1), padding: str = "SAME") -> np.ndarray:
        """CONV_2D: im2col (none for a 1 x 1), then ``_product``."""
        cout, kh, kw, cin = kernel.shape
        cols = x
        if (kh, kw, *stride) != (1, 1, 1, 1):
            pads = resolve_padding(padding, x.shape[1:3], (kh, kw), stride, "int8")
            # Padding holds the zero point: (zp - zp) * w adds nothing, as TFLite's.
            windows = ops._windows(x, (kh, kw), stride, pads, x_zero_point)  # (N, Ho, Wo, Cin, kh, kw)
            cols = windows.transpose(0, 1, 2, 4, 5, 3)  # (N, Ho, Wo, kh, kw, Cin): the kernel's order
        shape = (*cols.shape[:3], cout)
        y = self._product(cols.reshape(-1, kh * kw * cin), x_zero_point, kernel, bias, out)  # (P, Cout)
        return y.reshape(shape)

    def hard_swish(self, x: np.ndarray, params) -> np.ndarray:
        """HARD_SWISH: an int8 input takes 256 values, so the compiled twin runs once on each of
        them (the table, exact by construction) and every call is a lookup. (N, ...) int8."""
        table = self._once("table", params,
                           lambda: self.twins.hard_swish(np.arange(-128, 128, dtype=np.int8), params))
        return self.lookup(x, table)

    def add(self, a: np.ndarray, b: np.ndarray, params) -> np.ndarray:
        """ADD, SUB: a pair op (``_pair_op``) over ``reference.add``, compiled."""
        return self._pair_op(a, b, "add", params,
                             lambda a_values, b_values: self.twins.add(a_values, b_values, params))

    def mul(self, a: np.ndarray, a_zero_point: int, b: np.ndarray, b_zero_point: int,
            out: Requantize) -> np.ndarray:
        """MUL: a pair op (``_pair_op``) over ``reference.mul``, compiled."""
        return self._pair_op(a, b, f"mul {a_zero_point} {b_zero_point}", out,
                             lambda a_values, b_values: self.twins.mul(a_values, a_zero_point, b_values,
                                                                      b_zero_point, out))

    def _pair_op(self, a: np.ndarray, b: np.ndarray, what: str, constant: object,
                 twin: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
        """An elementwise op of two int8 (uint8) tensors, broadcasting: their values make only
        256 x 256 pairs, so the compiled twin runs once on every pair (the table, exact by
        construction) and each call looks its outputs up by the inputs' bytes: table[a, b], or
        one row or column of it when a side is a single value (a constant: 3x faster). Any
        other types run the twin itself."""
        if a.dtype != b.dtype or a.dtype.itemsize != 1:
            return twin(a, b)

        def make_table() -> np.ndarray:  # (256, 256), [byte of a, byte of b]
            values = np.arange(256, dtype=np.uint8).view(a.dtype)  # int8: 0..127, then -128..-1
            return twin(np.repeat(values, 256), np.tile(values, 256)).reshape(256, 256)
        table = self._once(f"{what} table, {a.dtype.char}", constant, make_table)
        shape = a.shape if a.shape == b.shape or b.ndim == 0 else np.broadcast_shapes(a.shape, b.shape)
        y = np.empty(shape, table.dtype)
        if a.size == 1 or b.size == 1:
            x, line = (a, table[:, _bytes(b)[0]]) if b.size == 1 else (b, table[_bytes(a)[0]])
            self.cores.lookup_byte_loop(_bytes(x, shape), np.ascontiguousarray(line), y.reshape(-1))
        else:
            self.cores.lookup_pair_loop(_bytes(a, shape), _bytes(b, shape), table, y.reshape(-1))
        return y

    def fully_connected(self, x: np.ndarray, x_zero_point: int, weights: np.ndarray,
                        bias: np.ndarray | None, out: Requantize) -> np.ndarray:
        """FULLY_CONNECTED: (N, Cin) @ (Cin, Cout) exactly, then the epilogue."""
        return self._product(x, x_zero_point, weights, bias, out)


def largest_product(dtype: type, zero_point: int, weights: np.ndarray) -> int:
    """max |x - zp| * max |w|: the largest product of an input of ``dtype`` and these weights."""
    info = np.iinfo(dtype)
    largest_weight = int(np.abs(weights, dtype=np.int64).max())  # in int8, |-128| is -128
    return max(zero_point - int(info.min), int(info.max) - zero_point) * max(largest_weight, 1)


def _bytes(x: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """An 8-bit x (broadcast to ``shape``) as flat contiguous bytes (size,) uint8: a copy only
    where it must be."""
    x = x if shape is None or x.shape == shape else np.broadcast_to(x, shape)
    return np.ascontiguousarray(x).reshape(-1).view(np.uint8)
