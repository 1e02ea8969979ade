"""Integer kernels vs their loop twins, exactly, on seeded generated cases (no TensorFlow needed).

``ops`` (vectorised NumPy, float64 BLAS for the sums) and ``reference`` (Python ints in
loops) are written independently; equality is exact. Requantization parameters are drawn
like the ones converters produce (multipliers in [2^30, 2^31), shifts -12..1, per channel).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mobilenet_np.int8 import fixedpoint, ops, reference
from mobilenet_np.int8.fixedpoint import Requantize
from mobilenet_np.int8.graph import AddParams, HardSwishParams

CASES = 60  # the loop twins run Python-int loops: small shapes, many cases
ROUNDINGS = ("double", "double_up", "single")
int32s = st.integers(-(2**31), 2**31 - 1)
seeds = st.integers(0, 2**32 - 1)


def int8(rng, shape) -> np.ndarray:
    return rng.integers(-128, 128, shape).astype(np.int8)


def requantize(rng, channels: int, rounding: str) -> Requantize:
    """Random per-channel output stage, with a clamp sometimes narrower than int8 (fused ReLU6)."""
    zero = int(rng.integers(-128, 128))
    lo, hi = (-128, 127) if rng.random() < 0.5 else (max(-128, zero), min(127, zero + 40))
    return Requantize(rng.integers(2**30, 2**31, channels), rng.integers(-12, 2, channels), zero,
                      lo, hi, rounding)


@given(int32s, st.integers(0, 2**31 - 1), st.integers(-31, 7), st.sampled_from(ROUNDINGS))
def test_multiply_by_quantized_multiplier_matches_python_ints(x, multiplier, shift, rounding) -> None:
    x = max(min(x, 2**30), -(2**30)) >> max(shift, 0)  # keep x << shift inside int32, as TFLite does
    vector = fixedpoint.multiply_by_quantized_multiplier(np.array([x]), multiplier, shift, rounding)
    assert int(vector[0]) == reference.mbqm(x, multiplier, shift, reference.ROUNDING_CODES[rounding])


@given(int32s, int32s)
def test_saturating_rounding_doubling_high_mul_matches_python_ints(a, b) -> None:
    assert int(fixedpoint.saturating_rounding_doubling_high_mul(a, b)) == reference.srdhm(a, b)
    assert int(fixedpoint.saturating_rounding_doubling_high_mul(-(2**31), -(2**31))) == 2**31 - 1


@settings(max_examples=2000)
@given(int32s, st.integers(0, 2**31 - 1), st.integers(-31, 7), st.sampled_from(ROUNDINGS))
def test_requantize_in_float64_is_requantize(acc, multiplier, shift, rounding) -> None:
    """The float64 route gives requantize's integer, unclamped, wherever acc << shift fits int32
    (TFLite's own condition): the multiplier's ends, every shift, ties included (below)."""
    acc = max(min(acc, 2**31 - 1), -(2**31)) >> max(shift, 0)
    code = reference.ROUNDING_CODES[rounding]
    stage = (code, 0, -(2**40), 2**40)
    _, high, low, left, right, _ = reference.float64_stage(Requantize(multiplier, shift, 0,
                                                                      rounding=rounding), 1)
    got = reference.requantize_in_float64(float(acc), high[0], low[0], left[0], right[0], stage)
    assert got == reference.requantize(acc, multiplier, shift, stage)
    for tie in (-6, -5, 5, 1):  # the ties of test_rounding_recipes_differ_exactly_at_ties
        for m, sh in ((2**30, -1), (2**30 + 1, -1), (2**30, 0)):
            _, h, lw, le, r, _ = reference.float64_stage(Requantize(m, sh, 0, rounding=rounding), 1)
            assert (reference.requantize_in_float64(float(tie), h[0], lw[0], le[0], r[0], stage)
                    == reference.requantize(tie, m, sh, stage))


def test_rounding_recipes_differ_exactly_at_ties() -> None:
    # -6 * 0.5 * 2^-1 = -1.5: a tie in the final shift. Away from zero -> -2; up -> -1.
    assert reference.mbqm(-6, 2**30, -1, reference.DOUBLE) == -2
    assert reference.mbqm(-6, 2**30, -1, reference.DOUBLE_UP) == -1
    assert reference.mbqm(-6, 2**30, -1, reference.SINGLE) == -1
    # 1 * (0.5 + 2^-31) / 2 = 0.25 + tiny: the high multiply rounds it up to 0.5, the shift
    # rounds that tie up to 1; rounding once gives 0. Double rounding is one LSB off here.
    assert reference.mbqm(1, 2**30 + 1, -1, reference.DOUBLE_UP) == 1
    assert reference.mbqm(1, 2**30 + 1, -1, reference.SINGLE) == 0
    # gemmlowp's high multiply nudges and truncates toward zero: that is ties toward +inf.
    assert reference.srdhm(-5, 2**30) == -2 and reference.srdhm(5, 2**30) == 3


@given(st.floats(1e-9, 1e3))
def test_quantize_multiplier_round_trips(real) -> None:
    multiplier, shift = fixedpoint.quantize_multiplier(real)
    assert 2**30 <= multiplier < 2**31
    assert abs(multiplier * 2.0 ** (shift - 31) - real) <= real * 2.0**-30  # Q31: half an LSB


def test_quantize_multiplier_edges() -> None:
    assert fixedpoint.quantize_multiplier(0.0) == (0, 0)
    assert fixedpoint.quantize_multiplier(1.0) == (2**30, 1)
    assert fixedpoint.quantize_multiplier(1 - 2**-40) == (2**30, 1)  # rounds up to 2^31: halves
    assert fixedpoint.quantize_multiplier(2.0**-40) == (0, 0)  # shift < -31: everything shifts out


def test_activation_ranges() -> None:
    assert fixedpoint.activation_range("RELU6", 6 / 255, -128) == (-128, 127)
    assert fixedpoint.activation_range("RELU6", 0.1, -10) == (-10, 50)
    assert fixedpoint.activation_range("RELU", 0.1, -10) == (-10, 127)
    assert fixedpoint.activation_range("NONE", 0.1, 3) == (-128, 127)


@st.composite
def conv_problems(draw, depthwise: bool):
    rng = np.random.default_rng(draw(seeds))
    n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kh, kw = draw(st.sampled_from([(1, 1), (3, 3), (5, 5), (3, 1), (2, 2)]))
    stride = draw(st.sampled_from([(1, 1), (2, 2), (1, 2)]))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    if padding == "VALID" and (kh > h or kw > w):
        padding = "SAME"
    cin, multiplier = draw(st.integers(1, 5)), draw(st.sampled_from([1, 2])) if depthwise else 1
    cout = cin * multiplier if depthwise else draw(st.integers(1, 5))
    kernel = int8(rng, (1, kh, kw, cout) if depthwise else (cout, kh, kw, cin))
    bias = rng.integers(-5000, 5000, cout).astype(np.int32)
    out = requantize(rng, cout, draw(st.sampled_from(ROUNDINGS)))
    args = (int8(rng, (n, h, w, cin)), int(rng.integers(-128, 128)), kernel, bias, out, stride, padding)
    return (*args, multiplier) if depthwise else args


@settings(max_examples=CASES)
@given(conv_problems(depthwise=False))
def test_conv2d_twin(problem) -> None:
    assert np.array_equal(ops.conv2d(*problem), reference.conv2d(*problem))


@settings(max_examples=CASES)
@given(conv_problems(depthwise=True))
def test_depthwise_conv2d_twin(problem) -> None:
    assert np.array_equal(ops.depthwise_conv2d(*problem), reference.depthwise_conv2d(*problem))


@settings(max_examples=CASES)
@given(seeds, st.sampled_from(ROUNDINGS), st.booleans())
def test_fully_connected_twin(seed, rounding, with_bias) -> None:
    rng = np.random.default_rng(seed)
    cin, cout = int(rng.integers(1, 40)), int(rng.integers(1, 12))
    args = (int8(rng, (int(rng.integers(1, 3)), cin)), int(rng.integers(-128, 128)), int8(rng, (cout, cin)),
            rng.integers(-9000, 9000, cout).astype(np.int32) if with_bias else None,
            requantize(rng, cout, rounding))
    assert np.array_equal(ops.fully_connected(*args), reference.fully_connected(*args))


@pytest.mark.parametrize("extreme", [False, True])
def test_float64_blas_sums_equal_int64_sums(extreme) -> None:
    """K = 3 * 3 * 1024 terms; at the extreme every product is (-128 - 127) * -128 = 32640."""
    rng = np.random.default_rng(7)
    x, kernel, zero = int8(rng, (2, 5, 5, 1024)), int8(rng, (3, 3, 3, 1024)), int(rng.integers(-128, 128))
    if extreme:
        x, kernel, zero = np.full_like(x, -128), np.full_like(kernel, -128), 127
    acc = ops.conv2d_accumulators(x, zero, kernel, (2, 2), "VALID")  # (2, 2, 2, 3)
    windows = np.stack([np.stack([x[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3] for j in range(2)], 1)
                        for i in range(2)], 1).astype(np.int64) - zero  # (N, 2, 2, 3, 3, 1024)
    exact = np.einsum("nijyxc,oyxc->nijo", windows, kernel.astype(np.int64))  # int64 all the way
    assert np.array_equal(acc, exact)
    if extreme:
        assert exact.max() == 255 * 128 * 9216  # 300,810,240: within int32, and far from 2^53


@settings(max_examples=CASES)
@given(seeds)
def test_add_and_mul_twins(seed) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(d) for d in rng.integers(1, 4, 4))
    a = int8(rng, shape)
    b = int8(rng, (1, 1, 1, shape[3]) if rng.random() < 0.5 else shape)  # SE-style broadcast
    out = requantize(rng, 1, "double")
    scalar = Requantize(out.multiplier[0], out.shift[0], out.zero_point, out.lo, out.hi, "double")
    def draw(low, high) -> int:
        return int(rng.integers(low, high))

    params = AddParams(20, draw(-128, 128), draw(2**30, 2**31), draw(-3, 1),
                       draw(-128, 128), draw(2**30, 2**31), draw(-3, 1),
                       Requantize(scalar.multiplier, np.int64(-20 + draw(-2, 3)), out.zero_point,
                                  out.lo, out.hi, "double"))
    assert np.array_equal(ops.add(a, b, params), reference.add(a, b, params))
    zeros = (int(rng.integers(-128, 128)), int(rng.integers(-128, 128)))
    assert np.array_equal(ops.mul(a, zeros[0], b, zeros[1], scalar),
                          reference.mul(a, zeros[0], b, zeros[1], scalar))


@settings(max_examples=CASES)
@given(seeds)
def test_mean_twins(seed) -> None:
    rng = np.random.default_rng(seed)
    x = int8(rng, (int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(1, 6)),
                   int(rng.integers(1, 40))))  # crosses the 16-channel vector blocks
    stage = int(rng.integers(2**30, 2**31)), int(rng.integers(-12, -4)), int(rng.integers(-300, 300))
    assert np.array_equal(ops.mean_hw(x, *stage), reference.mean_hw(x, *stage))
    out = requantize(rng, 1, "double")
    out = Requantize(out.multiplier[0], out.shift[0], out.zero_point, rounding="double")
    zero, keep = int(rng.integers(-128, 128)), bool(rng.integers(2))
    assert np.array_equal(ops.mean(x, zero, (1, 2), out, keep), reference.mean(x, zero, (1, 2), out, keep))


@settings(max_examples=CASES)
@given(seeds, st.sampled_from(["SAME", "VALID"]))
def test_average_pool_and_pad_twins(seed, padding) -> None:
    rng = np.random.default_rng(seed)
    x = int8(rng, (1, int(rng.integers(3, 7)), int(rng.integers(3, 7)), int(rng.integers(1, 4))))
    window, stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4))), (int(rng.integers(1, 3)),) * 2
    assert np.array_equal(ops.average_pool2d(x, window, stride, padding, -100, 90),
                          reference.average_pool2d(x, window, stride, padding, -100, 90))
    paddings = rng.integers(0, 3, (4, 2))
    assert np.array_equal(ops.pad(x, paddings, -7), reference.pad(x, paddings, -7))


@settings(max_examples=CASES)
@given(seeds)
def test_hard_swish_twin_on_every_input(seed) -> None:
    rng = np.random.default_rng(seed)
    params = HardSwishParams(int(rng.integers(-128, 128)), int(rng.integers(-128, 128)),
                             int(rng.integers(2**14, 2**15)), int(rng.integers(-8, 1)),
                             int(rng.integers(2**14, 2**15)), int(rng.integers(-4, 5)))
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1)
    assert np.array_equal(ops.hard_swish(x, params), reference.hard_swish(x, params))


@settings(max_examples=CASES)
@given(seeds)
def test_softmax_lookup_quantize_twins(seed) -> None:
    rng = np.random.default_rng(seed)
    x = int8(rng, (2, int(rng.integers(1, 60))))
    table = np.exp(-np.float32(rng.uniform(0.01, 0.3)) * np.arange(256, dtype=np.float32)).astype(np.float32)
    assert np.array_equal(ops.softmax(x, table, 1 / 256, -128), reference.softmax(x, table, 1 / 256, -128))
    lut = int8(rng, 256)
    assert np.array_equal(ops.lookup(x, lut), reference.lookup(x, lut))
    real = rng.uniform(-3, 3, (3, 5)).astype(np.float32)
    scale, zero = np.float32(rng.uniform(0.004, 0.05)), int(rng.integers(-128, 128))
    real[0, :3] = np.array([0.5, -0.5, 2.5], np.float32) * scale  # ties (or a ulp off them)
    assert np.array_equal(ops.quantize(real, scale, zero), reference.quantize(real, scale, zero))
    assert np.array_equal(ops.dequantize(x, scale, zero), reference.dequantize(x, scale, zero))


def test_round_half_away_is_not_floor_plus_half() -> None:
    value = np.float32(0.49999997)
    assert fixedpoint.round_half_away(value) == 0.0 and np.floor(value + np.float32(0.5)) == 1.0
    assert fixedpoint.round_half_away(np.array([-2.5, 2.5, -0.5])).tolist() == [-3.0, 3.0, -1.0]


def test_unknown_rounding_is_an_error() -> None:
    with pytest.raises(ValueError, match="rounding must be"):
        fixedpoint.multiply_by_quantized_multiplier(np.array([1]), 2**30, 0, "nearest")
