"""The ``numba`` backend: the fused steps, calling the loop cores of ``reference.py`` compiled.

``Network(..., backend="numba")`` runs its plan's units with the step classes here instead of
``fused.py``'s: the same units, with the same BN-folded weights, in the same order, but each
step runs a loop core of ``reference.py`` compiled by Numba: the loops you read are the loops
that run. What each step calls, chosen by measurement (docs/speed.md):

- ``Depthwise``: ``depthwise_loop``, bias and activation fused, any stride, padding and
  depth multiplier;
- ``Conv`` (the stem and every 1x1): the im2col gather and BLAS's matmul, as on the numpy
  path (BLAS is faster than any loop nest at these sizes), then ``bias_activate_loop``: bias
  and activation in one pass over the matmul's output, in place;
- ``SqueezeExcite``: ``squeeze_excite_loop``; ``Head``: ``global_pool_loop``, then BLAS and
  ``bias_activate_loop`` per stage.

Compiled in nopython mode with the GIL released (so the lanes of ``lanes.run_in_lanes`` run
side by side) and cached on disk beside ``reference.py`` (``cache=True``): the first call in
a fresh install compiles, later processes load the machine code.
"""

from __future__ import annotations

import functools
import types

import numpy as np

from . import fused, reference
from .errors import MissingDependencyError, UnsupportedError
from .plan import Unit
from .reference import ACTIVATION_CODES

# The cores that run compiled; ``activate`` and ``matmul_loop`` are called by the others.
CORES = ("activate", "matmul_loop", "bias_activate_loop", "depthwise_loop", "global_pool_loop",
         "squeeze_excite_loop")


@functools.cache
def kernels() -> types.SimpleNamespace:
    """``reference.py``'s loop cores compiled by Numba, by name (each compiles on first call).

    Each core is compiled from its own code object, unchanged; only the names it calls
    (``activate``, another core) resolve to the compiled versions, through a shared copy of
    ``reference.py``'s globals.
    """
    try:
        import numba
    except ImportError:
        raise MissingDependencyError("backend 'numba' needs Numba: pip install "
                                  "'mobilenet-np[jit]'") from None
    namespace = dict(vars(reference))
    for name in CORES:
        core = getattr(reference, name)
        twin = types.FunctionType(core.__code__, namespace, name)
        twin.__qualname__, twin.__module__ = core.__qualname__, core.__module__
        namespace[name] = numba.njit(cache=True, nogil=True)(twin)
    return types.SimpleNamespace(**{name: namespace[name] for name in CORES})


def float32(array: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy (or the array itself): what the compiled cores are typed for."""
    return np.ascontiguousarray(array, dtype=np.float32)


def code(activation: str | None, unit: Unit) -> int:
    """The loop cores' number for an activation kind; one they lack is an error at build."""
    if activation not in ACTIVATION_CODES:
        raise UnsupportedError(f"the numba backend has no loop code for {activation} "
                               f"({unit.name}): add it to reference.ACTIVATION_CODES")
    return ACTIVATION_CODES[activation]


class Conv(fused.Conv):
    """im2col and BLAS's matmul as on the numpy path, then the compiled epilogue in place."""

    def __init__(self, unit: Unit) -> None:
        super().__init__(unit)
        self.code, self.bias = code(unit.activation, unit), float32(unit.bias)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.matmul(x)  # (N*Ho*Wo, Cout)
        kernels().bias_activate_loop(out, self.bias, self.code)
        return out.reshape(len(x), *self.unit.output_shape)


class Depthwise(fused.Step):
    """Depthwise conv + folded BN + activation: one call of the compiled ``depthwise_loop``.

    With a depth multiplier M, every input channel is repeated M times first: output channel
    c * M + m is then an ordinary depthwise channel with its own filter.
    """

    def __init__(self, unit: Unit) -> None:
        super().__init__(unit)
        self.code, self.top_left = code(unit.activation, unit), (unit.pads[0][0], unit.pads[1][0])
        kh, kw, _, self.multiplier = unit.kernel.shape
        self.kernel = float32(unit.kernel.reshape(kh, kw, -1))  # (kh, kw, C*M), channel c*M + m
        self.bias = float32(unit.bias)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.multiplier > 1:
            x = np.repeat(x, self.multiplier, axis=3)
        out = np.empty((len(x), *self.unit.output_shape), np.float32)
        kernels().depthwise_loop(float32(x), self.kernel, self.bias, (self.unit.stride,) * 2,
                                 self.top_left, self.code, out)
        return out


class SqueezeExcite(fused.Step):
    """MobileNetV3's gate: one call of the compiled ``squeeze_excite_loop``."""

    def __init__(self, unit: Unit) -> None:
        super().__init__(unit)
        self.arrays = [float32(a) for stage in unit.stages for a in (stage.matrix, stage.bias)]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        kernels().squeeze_excite_loop(float32(x), *self.arrays, out)
        return out


class Head(fused.Step):
    """Global pooling by the compiled ``global_pool_loop``, then BLAS + the compiled epilogue."""

    def __init__(self, unit: Unit) -> None:
        super().__init__(unit)
        self.stages = [(float32(s.matrix), float32(s.bias), code(s.activation, unit))
                       for s in unit.stages]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        pooled = np.empty((len(x), x.shape[3]), np.float32)  # (N, C)
        kernels().global_pool_loop(float32(x), self.unit.pool == "avg", pooled)
        for matrix, bias, activation in self.stages:
            pooled = pooled @ matrix  # (N, C')
            kernels().bias_activate_loop(pooled, bias, activation)
        return pooled


# Which step class runs each op of ``plan.Unit``: the compiled ones, and the numpy steps
# where there is nothing to compile.
STEPS = {**fused.STEPS, "conv": Conv, "depthwise": Depthwise, "squeeze_excite": SqueezeExcite,
         "head": Head}
