"""The integer runtime compiled (``backend="numba"``): bit for bit its interpreted twins, and TFLite.

Kernels: each compiled kernel (``int8/compiled.py``: ``reference.py``'s loop cores compiled,
the exact float32 matmul) equals ``reference.py``'s loop twin, run interpreted on Python ints,
on generated cases (the generators of test_int8_kernels.py) and on the extremes: multipliers
2^30 and 2^31 - 1, shifts from -31 to +7, zero points at both ends, uint8, and matmuls long
enough to be cut into float32 chunks. Networks: every integer tensor equals TensorFlow Lite's
builtin kernels, on a converted V3-Small (HARD_SWISH, MUL, MEAN, ADD) and Google's real files
(uint8, and the TF2 int8 file with uint8 wrappers); a batch runs in lanes and gives each
image's answer. Skips, saying so, without Numba or TensorFlow.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import photos
from helpers.int8_cases import interpreter, quantize_by_formula
from helpers.tflite_cases import PTQ_FILE, UINT8_FILE, gold_input, sample_pixels
from hypothesis import given, settings
from hypothesis import strategies as st
from test_int8_kernels import ROUNDINGS, conv_problems, int8, requantize, seeds
from test_tflite_files import assert_equal_to_tflite, classify_json, real_file

import mobilenet_np as mnp
from mobilenet_np.errors import InputError, MissingDependencyError
from mobilenet_np.int8 import compiled, load_tflite, reference
from mobilenet_np.int8.fixedpoint import Requantize
from mobilenet_np.int8.graph import AddParams, HardSwishParams
from mobilenet_np.int8.model import backend_kernels

pytest.importorskip("numba", reason="backend 'numba' needs Numba (the [jit] extra)")
CASES = 25  # the twins are Python-int loops; Numba compiles once per type signature


@pytest.fixture(scope="module")
def nb() -> compiled.NumbaKernels:
    return compiled.NumbaKernels()


@settings(max_examples=CASES, deadline=None)
@given(conv_problems(depthwise=False))
def test_conv2d_equals_its_twin(problem) -> None:
    assert np.array_equal(compiled.NumbaKernels().conv2d(*problem), reference.conv2d(*problem))


@settings(max_examples=CASES, deadline=None)
@given(conv_problems(depthwise=True))
def test_depthwise_conv2d_equals_its_twin(problem) -> None:
    assert np.array_equal(compiled.NumbaKernels().depthwise_conv2d(*problem),
                          reference.depthwise_conv2d(*problem))


def extreme_stage(rng, channels: int, rounding: str, dtype=np.int8) -> Requantize:
    """Multipliers at both ends of [2^30, 2^31), shifts -31..7, zero point at an end of the type."""
    info = np.iinfo(dtype)
    zero = int(rng.choice([info.min, info.max, (int(info.min) + int(info.max)) // 2]))
    multipliers = rng.choice([2**30, 2**31 - 1, int(rng.integers(2**30, 2**31))], channels)
    return Requantize(multipliers, rng.integers(-31, 8, channels), zero, int(info.min), int(info.max),
                      rounding, dtype)


def test_the_float32_chunk_counts_a_weight_of_minus_128() -> None:
    """The exactness bound takes |w| = 128 for an int8 -128 (np.abs keeps int8 -128 negative):
    an input of int8 at zero point 0 reaches 128, so the largest product is 128 * 128."""
    weights = np.array([[-128, 5], [3, -7]], np.int8)
    assert compiled.largest_product(np.int8, 0, weights) == 128 * 128
    assert compiled.largest_product(np.uint8, 200, weights) == 200 * 128


@settings(max_examples=CASES, deadline=None)
@given(seeds, st.sampled_from(ROUNDINGS), st.booleans(), st.sampled_from([np.int8, np.uint8]))
def test_fully_connected_extremes_and_chunks_equal_the_twin(seed, rounding, with_bias, dtype) -> None:
    """K up to 700 crosses the float32 chunk (513 for int8 weights, 258 for centred uint8)."""
    rng = np.random.default_rng(seed)
    cin, cout = int(rng.choice([3, 300, 700])), int(rng.integers(1, 6))
    info = np.iinfo(dtype)
    x = rng.integers(info.min, int(info.max) + 1, (2, cin)).astype(dtype)
    x_zero = int(rng.choice([info.min, info.max]))  # |x - zp| reaches 255
    weights = (int8(rng, (cout, cin)) if dtype == np.int8 else
               rng.integers(-255, 256, (cout, cin)).astype(np.int32))  # uint8 weights, centred
    weights[0, 0] = -128 if dtype == np.int8 else 255  # the largest |w| the type allows
    bias = rng.integers(-2**20, 2**20, cout).astype(np.int64) if with_bias else None
    out = extreme_stage(rng, cout, rounding, dtype)
    args = (x, x_zero, weights, bias, out)
    # A large shift times a large sum leaves int32: TFLite never meets it (its shifts keep the
    # scaled value in range), so shifts stay <= 0 where the sums are large.
    if cin > 3:
        out = Requantize(out.multiplier, np.minimum(out.shift, -12), out.zero_point, out.lo, out.hi,
                         rounding, dtype)
        args = (x, x_zero, weights, bias, out)
    assert np.array_equal(compiled.NumbaKernels().fully_connected(*args), reference.fully_connected(*args))


@settings(max_examples=CASES, deadline=None)
@given(seeds)
def test_uint8_convolutions_equal_their_twins(seed) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (1, 5, 6, 3)).astype(np.uint8)
    x_zero = int(rng.choice([0, 255, 128]))
    out = requantize(rng, 3, "double_up")
    out = Requantize(out.multiplier, out.shift, out.zero_point + 128, 0, 255, "double_up", np.uint8)
    bias = rng.integers(-5000, 5000, 3).astype(np.int64)
    for kernel, stride in (((1, 1, 1, 3), (1, 1)), ((1, 3, 3, 3), (2, 2))):
        centred = rng.integers(-255, 256, kernel).astype(np.int32)
        args = (x, x_zero, centred, bias, out, stride, "SAME")
        assert np.array_equal(compiled.NumbaKernels().depthwise_conv2d(*args),
                              reference.depthwise_conv2d(*args))
        conv = (x, x_zero, centred.reshape(3, *kernel[1:3], 1).repeat(3, axis=3), bias, out, stride, "SAME")
        assert np.array_equal(compiled.NumbaKernels().conv2d(*conv), reference.conv2d(*conv))


@settings(max_examples=CASES, deadline=None)
@given(seeds)
def test_elementwise_kernels_equal_their_twins(nb, seed) -> None:
    """ADD/SUB, MUL (broadcast as squeeze-excite's), MEAN, AVERAGE_POOL, HARD_SWISH, lookup, SOFTMAX."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(d) for d in rng.integers(1, 5, 4))
    a = int8(rng, shape)
    b = int8(rng, (shape[0], 1, 1, shape[3]) if rng.random() < 0.5 else shape)
    out = extreme_stage(rng, 1, "double")
    out = Requantize(out.multiplier[0], np.int64(-20 + int(rng.integers(-2, 3))), out.zero_point,
                     rounding="double")
    params = AddParams(20, int(rng.choice([-128, 127, 3])), int(rng.integers(2**30, 2**31)),
                       int(rng.integers(-3, 1)), int(rng.choice([-128, 127, -9])),
                       int(rng.integers(2**30, 2**31)), int(rng.integers(-3, 1)), out,
                       int(rng.choice([1, -1])))
    assert np.array_equal(nb.add(a, b, params), reference.add(a, b, params))
    scalar = Requantize(out.multiplier, np.int64(int(rng.integers(-12, -4))), out.zero_point, -100, 120,
                        "double")
    assert np.array_equal(nb.mul(a, -128, b, 127, scalar), reference.mul(a, -128, b, 127, scalar))
    x = int8(rng, (2, 3, 4, int(rng.integers(1, 40))))  # crosses the 16-channel vector blocks
    stage = int(rng.integers(2**30, 2**31)), int(rng.integers(-12, -4)), int(rng.integers(-300, 300))
    assert np.array_equal(nb.mean_hw(x, *stage), reference.mean_hw(x, *stage))
    for axes, keep in (((1, 2), False), ((1, 2), True), ((3,), False)):
        assert np.array_equal(nb.mean(x, 127, axes, scalar, keep), reference.mean(x, 127, axes, scalar, keep))
    window, stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4))), (int(rng.integers(1, 3)),) * 2
    for dtype, lo, hi in ((np.int8, -100, 90), (np.uint8, 0, 255)):
        pooled = x.astype(dtype)
        assert np.array_equal(nb.average_pool2d(pooled, window, stride, "SAME", lo, hi, dtype),
                              reference.average_pool2d(pooled, window, stride, "SAME", lo, hi, dtype))
    every = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1)
    swish = HardSwishParams(int(rng.integers(-128, 128)), int(rng.integers(-128, 128)),
                            int(rng.integers(2**14, 2**15)), int(rng.integers(-8, 1)),
                            int(rng.integers(2**14, 2**15)), int(rng.integers(-4, 5)))
    assert np.array_equal(nb.hard_swish(every, swish), reference.hard_swish(every, swish))
    table = int8(rng, 256)
    assert np.array_equal(nb.lookup(every, table), reference.lookup(every, table))
    logits = int8(rng, (2, int(rng.integers(1, 60))))
    exp = np.exp(-np.float32(rng.uniform(0.01, 0.3)) * np.arange(256, dtype=np.float32)).astype(np.float32)
    for dtype, zero in ((np.int8, -128), (np.uint8, 0)):
        assert np.array_equal(nb.softmax(logits, exp, 1 / 256, zero, dtype),
                              reference.softmax(logits, exp, 1 / 256, zero, dtype))


@settings(max_examples=CASES, deadline=None)
@given(seeds)
def test_pair_ops_equal_their_twins(nb, seed) -> None:
    """ADD/SUB and MUL looked up in their 256 x 256 tables: int8 and uint8, both sides
    broadcast, a single value on either side (a row or column of the table), a table kept
    across calls and never shared between zero points or types."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(d) for d in rng.integers(1, 6, 4))
    sides = [(shape, shape), (shape, (shape[0], 1, 1, shape[3])), ((1, 1, 1, shape[3]), shape),
             (shape, ()), ((), shape), ((1, 1), shape[2:]), ((), ())]
    for dtype in (np.int8, np.uint8):
        info = np.iinfo(dtype)
        zeros = [int(z) for z in rng.integers(int(info.min), int(info.max) + 1, 4)]
        stage = extreme_stage(rng, 1, "double", dtype)
        out = Requantize(stage.multiplier[0], np.int64(-20 + int(rng.integers(-2, 3))), stage.zero_point,
                         int(info.min), int(info.max), "double", dtype)
        params = AddParams(20, zeros[0], int(rng.integers(2**30, 2**31)), int(rng.integers(-3, 1)),
                           zeros[1], int(rng.integers(2**30, 2**31)), int(rng.integers(-3, 1)), out,
                           int(rng.choice([1, -1])))
        product = Requantize(stage.multiplier[0], np.int64(int(rng.integers(-14, -4))), stage.zero_point,
                             int(info.min), int(info.max), "double", dtype)
        for a_shape, b_shape in sides:
            a, b = (rng.integers(int(info.min), int(info.max) + 1, side).astype(dtype)
                    for side in (a_shape, b_shape))
            assert np.array_equal(nb.add(a, b, params), reference.add(a, b, params))
            for za, zb in (zeros[2:], zeros[:2]):  # one Requantize, two pairs of zero points
                assert np.array_equal(nb.mul(a, za, b, zb, product), reference.mul(a, za, b, zb, product))


# ---- whole networks, against TFLite's builtin kernels -------------------------------------------


def test_v3_small_equals_tflite_builtin_kernels(tf, int8_models) -> None:
    blob, tests = int8_models("v3-small")
    model, gold = load_tflite(blob, backend="numba"), interpreter(tf, blob)
    batch = quantize_by_formula(tests, *model.input_quantization)  # (N, H, W, 3) int8
    for q in batch:
        _, compared = assert_equal_to_tflite(model, gold, q[None])
        assert compared == len(model.graph.operators) + 1
    assert np.array_equal(model.forward(batch), load_tflite(blob).forward(batch))  # in lanes


@pytest.mark.parametrize("name", [UINT8_FILE, PTQ_FILE])
def test_real_files_equal_tflite_builtin_kernels(tf, name) -> None:
    path = real_file(name)
    model, gold = load_tflite(path, backend="numba"), interpreter(tf, path.read_bytes())
    for image in sample_pixels(model.input.shape[1])[:2]:
        _, compared = assert_equal_to_tflite(model, gold, gold_input(model, image[None]))
        assert compared >= len(model.graph.operators)


def test_classify_tflite_backend_numba_prints_the_same(capsys) -> None:
    """``classify --tflite FILE --backend numba``: the same top-5, probabilities and labels."""
    path, pictures = str(real_file(UINT8_FILE)), photos.picture_paths()
    assert classify_json(["--tflite", path, "--backend", "numba", *pictures], capsys) == classify_json(
        ["--tflite", path, *pictures], capsys)


def test_quantize_runs_on_the_float_models_backend() -> None:
    net = mnp.MobileNet(alpha=0.25, resolution=64, weights=None, seed=0, backend="numba")
    images = net.random_input(3, seed=1)
    compiled_model = mnp.quantize(net, images)
    assert compiled_model.backend == "numba"
    q = compiled_model.preprocess((images + 1) * 127.5, check_range=False)
    assert np.array_equal(compiled_model.forward(q), mnp.quantize(net, images, backend="numpy").forward(q))


def test_without_numba_one_line_and_unknown_backends(monkeypatch) -> None:
    with pytest.raises(InputError, match="backend must be 'numpy' or 'numba', got 'jax'"):
        backend_kernels("jax")
    compiled.compiled_namespace.cache_clear()
    monkeypatch.setitem(sys.modules, "numba", None)
    try:
        with pytest.raises(MissingDependencyError, match=r"pip install 'mobilenet-np\[jit\]'"):
            backend_kernels("numba")
    finally:
        compiled.compiled_namespace.cache_clear()  # the next caller compiles again (from the disk cache)
