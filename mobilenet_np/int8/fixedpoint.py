"""Fixed-point arithmetic of TensorFlow Lite's integer kernels, vectorised over NumPy int64.

An int8 network never multiplies by a real number at run time. Every real scale (say
``input_scale * weight_scale / output_scale = 0.0037``) is turned once, when the model is
loaded, into an int32 *multiplier* in [2^30, 2^31) and a power-of-two *shift*, so that
``real ~= multiplier * 2^(shift - 31)`` (``quantize_multiplier``). At run time an int32
accumulator ``x`` becomes ``x * real`` by an integer multiply and a rounding shift
(``multiply_by_quantized_multiplier``). TFLite has three recipes for that rounding:

* **double rounding** (gemmlowp's, TFLite's ``common.h`` unless built with
  ``TFLITE_SINGLE_ROUNDING``): ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x *
  2^left, m), right)``: round once to the high 32 bits of ``2 x m`` (ties toward +inf), then
  round again in the right shift, ties away from zero ("double"). The vector kernels do the
  same two steps with ARM's SQRDMULH and SRSHL instructions (emulated with SSE on x86),
  whose shift rounds ties *up*, toward +inf ("double_up"): the two differ on exact
  negative ties of the shift only.
* **single rounding** (``TFLITE_SINGLE_ROUNDING``): ``(x * m + 2^(30 - shift)) >> (31 -
  shift)`` in 64 bits: one rounding, half up ("single").

Which recipe each builtin kernel of the pip TensorFlow 2.21 runtime uses was measured, not
assumed: every op of converted V1/V2/V3 models was replayed on TFLite's own inputs with each
recipe (see ``graph.py``). None uses single rounding: the wheel is built without it.
Scalar, plain-Python twins of these functions are in ``reference.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: a real scale as (int32 multiplier, shift).

    ``real = q * 2^shift`` with q in [0.5, 1) (``math.frexp``); the multiplier is q in Q31,
    ``round(q * 2^31)`` (half away from zero, as ``std::round``). If rounding reaches 2^31, the
    multiplier halves and the shift grows by one; shifts below -31 would shift every bit out,
    so they become (0, 0).
    """
    if real == 0.0:
        return 0, 0
    if real < 0:
        raise ValueError(f"quantize_multiplier: scales are positive, got {real}")
    q, shift = math.frexp(real)
    scaled = q * 2**31  # exact: a power-of-two rescaling of a double
    q_fixed = math.floor(scaled)
    q_fixed += scaled - q_fixed >= 0.5  # std::round: half away from zero (q > 0 here)
    if q_fixed == 2**31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def quantize_multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``quantize_multiplier`` per channel: (C,) float64 -> (C,) multipliers, (C,) shifts."""
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, np.float64).ravel()]
    return (np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64))


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul: ``round(a * b / 2^31)``, ties toward +inf.

    The int32 high half of ``2 * a * b``, rounded to nearest: gemmlowp adds 2^30 (or
    1 - 2^30 when negative) and truncates toward zero, which rounds every tie up, as ARM's
    SQRDMULH. Only INT32_MIN * INT32_MIN overflows (2^31 is not an int32): INT32_MAX.
    """
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    product = a * b  # |a * b| <= 2^62: exact in int64
    nudged = product + np.where(product >= 0, 2**30, 1 - 2**30)
    # C++ divides toward zero; NumPy's >> floors, so divide the magnitude and restore the sign.
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: ``x / 2^exponent`` rounded to nearest, ties away from 0."""
    x, exponent = np.asarray(x, np.int64), np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(
    x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int, rounding: str,
) -> np.ndarray:
    """``x * multiplier * 2^(shift - 31)`` rounded, by one of TFLite's recipes.

    rounding: "double" (gemmlowp, ties away from zero), "double_up" (the NEON instructions'
    ties-up rounding) or "single" (see the module docstring).

    x is int32-valued (any shape); multiplier and shift broadcast against it (per channel on
    the last axis). Returns int64 values that fit int32 for the scales TFLite produces.
    """
    x = np.asarray(x, np.int64)
    multiplier, shift = np.asarray(multiplier, np.int64), np.asarray(shift, np.int64)
    if rounding == "single":
        total_shift = 31 - shift
        return (x * multiplier + (np.int64(1) << (total_shift - 1))) >> total_shift
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    if rounding == "double":
        return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x << left, multiplier), right)
    if rounding == "double_up":
        # SQRDMULH (= gemmlowp's high multiply), then SRSHL by -right: its ties go up.
        high = saturating_rounding_doubling_high_mul(x << left, multiplier)
        return (high + ((np.int64(1) << right) >> 1)) >> right
    raise ValueError(f"rounding must be 'double', 'double_up' or 'single', got {rounding!r}")


@dataclass(frozen=True)
class Requantize:
    """How an int32 accumulator becomes an int8 (or uint8) output: scale, add the zero point, clamp.

    multiplier, shift: int64 scalars or (C,) arrays for per-channel weights; ``lo``/``hi``
    carry the fused activation (ReLU6 is a clamp to [zp, zp + round(6 / scale)] inside
    [-128, 127], or [0, 255] for uint8); rounding: "double", "double_up" or "single"
    (module docstring); dtype: the output's, np.int8 or np.uint8 (the older asymmetric scheme).
    """

    multiplier: np.ndarray
    shift: np.ndarray
    zero_point: int
    lo: int = -128
    hi: int = 127
    rounding: str = "double"
    dtype: type = np.int8

    def scaled(self, acc: np.ndarray) -> np.ndarray:
        """int32-valued accumulators times the real scale, rounded (no zero point, no clamp)."""
        return multiply_by_quantized_multiplier(acc, self.multiplier, self.shift, self.rounding)

    def apply(self, acc: np.ndarray) -> np.ndarray:
        """int32-valued accumulators (..., C) -> int8 (or uint8) outputs (..., C)."""
        return np.clip(self.scaled(acc) + self.zero_point, self.lo, self.hi).astype(self.dtype)


def round_half_away(value: np.ndarray) -> np.ndarray:
    """C's ``round``: to nearest, ties away from zero, in the input's float type.

    Not ``floor(v + 0.5)``: in float32, 0.49999997 + 0.5 rounds up to 1.0 before the floor.
    """
    value = np.asarray(value)
    whole = np.trunc(value)
    return whole + np.sign(value) * (np.abs(value - whole) >= 0.5)


def activation_range(activation: str, scale: float, zero_point: int,
                     dtype: type = np.int8) -> tuple[int, int]:
    """TFLite's CalculateActivationRangeQuantized: the fused activation as a clamp inside the
    output type's range ([-128, 127] for int8, [0, 255] for uint8).

    ``quantize(f) = zero_point + round(f / scale)`` in float32 (``f / scale`` is a float
    division in TFLite, and rounding is half away from zero).
    """
    def quantize(value: float) -> int:
        return zero_point + int(round_half_away(np.float32(value) / np.float32(scale)))

    low, high = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
    if activation == "NONE":
        return low, high
    if activation == "RELU":
        return max(low, quantize(0.0)), high
    if activation == "RELU6":
        return max(low, quantize(0.0)), min(high, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(low, quantize(-1.0)), min(high, quantize(1.0))
    raise UnsupportedError(f"fused activation {activation} is not supported on integer tensors")
