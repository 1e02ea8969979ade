"""Dynamic-range ("hybrid") .tflite files (``Optimize.DEFAULT`` without a representative
dataset: int8 weights, float32 activations) against TFLite's interpreter.

Gold model: TFLite's builtin kernels (no XNNPACK), every tensor preserved. Each op is replayed
on TFLite's own inputs. The hybrid CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED must be
**bit-exact**: their integer sums are exact and each float32 step is one correctly rounded
operation in TFLite's order (``mobilenet_np/int8/hybrid.py``), so no round-off may differ. The
file's other float ops are held to their float32 bounds (``test_tflite_files``) op by op, and
end to end every tensor is bit for bit TFLite's: the float ops compute in TFLite's order
(``int8/float_order.py``, checked on a small float file made to reach each of its paths), and
so every tensor of the float files is TFLite's bit for bit too.
Files: V2 0.35/96, V3-Small 0.75/96 (the project's calibrated random weights) and a small
seeded model converted with per-tensor weight scales, each converted once per session.
"""

from __future__ import annotations

import platform

import numpy as np
import pytest
from helpers.int8_cases import interpreter
from helpers.tflite_cases import (
    FLOAT_FILE,
    converted_files,
    dynamic_range_files,
    float_order_file,
    gold_input,
    run_gold,
    sample_pixels,
)
from test_tflite_files import assert_float_ops_within_bounds, is_hybrid, real_file

from mobilenet_np.errors import InputError
from mobilenet_np.int8 import float_order, hybrid, load_tflite
from mobilenet_np.int8 import reference as int8_reference
from mobilenet_np.int8 import reference_float_order as float_twins


@pytest.fixture(scope="module")
def files(tf):
    return dynamic_range_files(tf)


def skip_unless_x86_64() -> None:
    """float_order.py sums as TFLite's x86-64 wheel does (AVX registers of 8 floats, no FMA);
    TFLite built for another CPU (ARM NEON, 4 floats, FMA) sums in another order."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"TFLite's float kernels on {platform.machine()} sum in another order than "
                    f"the x86-64 wheel that int8/float_order.py follows")


@pytest.mark.parametrize("name", ["v2", "v3-small", "per-tensor"])
def test_hybrid_ops_equal_tflite_bit_for_bit(tf, files, name) -> None:
    blob = files[name]
    model, gold = load_tflite(blob), interpreter(tf, blob)
    graph = model.graph
    hybrid_ops = [(op, run) for op, run in model.steps if is_hybrid(graph, op)]
    assert len(hybrid_ops) >= 3
    kinds = {(op.opcode, len(graph.tensors[op.inputs[1]].quantization.scale) > 1) for op, _ in hybrid_ops}
    if name == "per-tensor":
        assert ("CONV_2D", False) in kinds and ("FULLY_CONNECTED", False) in kinds  # symmetric conv
    else:
        assert {("CONV_2D", True), ("DEPTHWISE_CONV_2D", True)} <= kinds
    size = model.input.shape[1]
    images = sample_pixels(size) if size > 12 else np.random.default_rng(4).uniform(
        -2, 3, (3, size, size, model.input.shape[-1])).astype(np.float32)
    for image in images:
        x = model.preprocess(image[None]) if size > 12 else image[None]  # [-1, 1], or seeded
        tensors = run_gold(gold, x)
        for op, run in hybrid_ops:
            inputs = [tensors[graph.tensors[i].name] for i in op.inputs if i >= 0]
            ours, theirs = run(*inputs), tensors[graph.tensors[op.outputs[0]].name]
            # the comparison carries information (V3's squeeze-excite convs have 16 outputs)
            assert len(np.unique(theirs)) > min(20, theirs.size // 4), op.index
            different = ours != theirs
            assert not different.any(), (
                f"op {op.index} ({op.opcode}): {different.sum()} of {ours.size} values differ, "
                f"by up to {np.abs(ours - theirs).max():.3g}")
        assert_float_ops_within_bounds(model, tensors)


FLOAT_KINDS = {  # each file's float ops that feed a hybrid op
    "v2": {"CONV_2D", "DEPTHWISE_CONV_2D"}, "v3-small": {"CONV_2D", "DEPTHWISE_CONV_2D", "HARD_SWISH"},
    "per-tensor": {"DEPTHWISE_CONV_2D"}}


@pytest.mark.parametrize("name", ["v2", "v3-small", "per-tensor"])
def test_dynamic_range_files_equal_tflite_end_to_end(tf, files, name) -> None:
    """The whole file, run by ``forward``: every tensor bit for bit, the output included.

    Each hybrid op is bit-exact on equal inputs (above); the float ops compute in TFLite's
    order (``int8/float_order.py``: convolutions, hard-swish, softmax) or are single correctly
    rounded operations (ADD, MUL, MEAN's sum then division as TFLite's), so equal inputs give
    equal outputs all the way. Any other order would not even be within a float32 bound end
    to end: a hybrid op quantizes its input, a step function, so one ulp before it can become
    a whole step after it.
    """
    skip_unless_x86_64()
    blob = files[name]
    model, gold = load_tflite(blob), interpreter(tf, blob)
    graph = model.graph
    float_kinds = {op.opcode for op, _ in model.steps if not is_hybrid(graph, op)}
    assert FLOAT_KINDS[name] <= float_kinds  # the kernels float_order.py sums in TFLite's order
    size = model.input.shape[1]
    images = sample_pixels(size) if size > 12 else np.random.default_rng(4).uniform(
        -2, 3, (3, size, size, model.input.shape[-1])).astype(np.float32)
    for image in images:
        x = model.preprocess(image[None]) if size > 12 else image[None]
        tensors = run_gold(gold, x)
        out, ours = model.forward(x, capture=True)
        assert len(np.unique(tensors[model.output.name])) > 20  # the comparison carries information
        for op, _ in model.steps:
            tensor = graph.tensors[op.outputs[0]].name
            different = ours[tensor] != tensors[tensor]
            assert not different.any(), (
                f"op {op.index} ({op.opcode}): {different.sum()} of {different.size} values differ, "
                f"by up to {np.abs(ours[tensor].astype(np.float64) - tensors[tensor]).max():.3g}")
        assert np.array_equal(out, tensors[model.output.name])


@pytest.mark.parametrize("name", ["TF Hub V1 0.25/224", "float32", "float16 weights"])
def test_float_files_equal_tflite_bit_for_bit(tf, name) -> None:
    """Float files too, when asked (``float_order="tflite"``; by default they run on BLAS, within
    the float32 bound: test_tflite_files): every tensor is TFLite's bit for bit on the sample
    photos and noise image (Google's TF Hub file, when the shared folder has it; the converted
    V2 0.35/96 float32 and float16-weights files)."""
    skip_unless_x86_64()
    blob = real_file(FLOAT_FILE).read_bytes() if name.startswith("TF Hub") else converted_files(tf)[name]
    model, gold = load_tflite(blob, float_order="tflite"), interpreter(tf, blob)
    for image in sample_pixels(model.input.shape[1]):
        x = gold_input(model, image[None])
        tensors = run_gold(gold, x)
        out, ours = model.forward(x, capture=True)
        assert len(np.unique(out)) > 20  # the comparison carries information
        for tensor, value in ours.items():
            different = value != tensors[tensor]
            assert not different.any(), f"{tensor}: {different.sum()} of {value.size} values differ"


def test_hybrid_kernels_equal_their_loop_twins() -> None:
    """Per-channel (asymmetric) and per-tensor (symmetric) CONV_2D, DEPTHWISE_CONV_2D with a
    depth multiplier, FULLY_CONNECTED both ways; two images with different ranges and an
    all-zero one (scale 1, zero point 0)."""
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (3, 6, 5, 3)).astype(np.float32)
    x[1] = np.abs(x[1]) * 4  # a non-negative image: zero point -128
    x[2] = 0
    kernel = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    depthwise = rng.integers(-127, 128, (1, 3, 3, 6)).astype(np.int8)
    per_channel = rng.uniform(1e-3, 1e-2, 6).astype(np.float32)
    bias = rng.normal(0, 0.1, 6).astype(np.float32)
    for scale in (per_channel[:4], per_channel[:1]):
        for stride, padding in (((1, 1), "SAME"), ((2, 2), "SAME"), ((2, 1), "VALID")):
            fast = hybrid.hybrid_conv2d(x, kernel, scale, bias[:4], stride, padding)
            assert fast.dtype == np.float32 and len(np.unique(fast[:2])) > 20
            assert np.array_equal(fast, int8_reference.hybrid_conv2d(x, kernel, scale, bias[:4], stride,
                                                                     padding))
            assert np.array_equal(fast[2], np.broadcast_to(bias[:4], fast[2].shape))
    for stride in ((1, 1), (2, 2)):
        fast = hybrid.hybrid_depthwise_conv2d(x, depthwise, per_channel, bias, stride, "SAME", 2)
        assert np.array_equal(fast, int8_reference.hybrid_depthwise_conv2d(x, depthwise, per_channel, bias,
                                                                           stride, "SAME", 2))
    flat, weights = x.reshape(3, -1), rng.integers(-127, 128, (7, 90)).astype(np.int8)
    for asymmetric in (True, False):
        fast = hybrid.hybrid_fully_connected(flat, weights, per_channel[:1], None, asymmetric)
        assert np.array_equal(fast, int8_reference.hybrid_fully_connected(flat, weights, per_channel[:1],
                                                                          None, asymmetric))


def test_float_order_kernels_equal_tflite_on_every_path(tf) -> None:
    """The summation paths of ``float_order.py`` the MobileNet files do not reach, on a float
    file made to reach them (``tflite_cases.float_order_file``): every tensor bit for bit,
    on 20 seeded inputs (the hard-swish tail rounds differently in one input of three)."""
    skip_unless_x86_64()
    blob = float_order_file(tf)
    model, gold = load_tflite(blob, float_order="tflite"), interpreter(tf, blob)
    graph = model.graph
    reached = {(op.opcode, graph.tensors[op.outputs[0]].shape[-1]) for op, _ in model.steps}
    assert {("HARD_SWISH", 3), ("DEPTHWISE_CONV_2D", 56), ("FULLY_CONNECTED", 7), ("SOFTMAX", 17)} <= reached
    assert {("CONV_2D", c) for c in (28, 13, 8, 10, 11)} <= reached
    rng = np.random.default_rng(1)
    for _ in range(20):
        x = rng.uniform(-5, 5, (1, 7, 7, 3)).astype(np.float32)
        tensors = run_gold(gold, x)
        _, ours = model.forward(x, capture=True)
        for tensor, value in ours.items():
            different = value != tensors[tensor]
            assert not different.any(), f"{tensor}: {different.sum()} of {value.size} values differ"


def test_float_order_kernels_equal_their_loop_twins() -> None:
    """Every summation path of float_order.py: output channels in Eigen's 2-packet (in order),
    one-packet (even/odd) and last-channel (pairs) kernels, pixel counts off the 4-wide
    tiles, a depth past its last multiple of 8, one pixel (the matrix-vector lanes, an odd
    last row); FULLY_CONNECTED on one and two rows; depthwise with a depth multiplier and
    padding; MEAN over two axes; hard-swish with a tail; softmax rows of several lengths and
    alignments."""
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (2, 5, 3, 3)).astype(np.float32)
    kernel = rng.normal(0, 1, (29, 3, 3, 3)).astype(np.float32)  # 16 + 8 + 4 + 1 channels, depth 27
    bias = rng.normal(0, 1, 29).astype(np.float32)
    for stride, padding in (((1, 1), "SAME"), ((2, 1), "VALID")):
        fast = float_order.conv2d(x, kernel, bias, stride, padding)
        assert np.array_equal(fast, float_twins.tflite_conv2d(x, kernel, bias, stride, padding))
    pixel = rng.normal(0, 1, (1, 1, 1, 13)).astype(np.float32)  # one pixel, depth 8 + 5
    one_by_one = rng.normal(0, 1, (11, 1, 1, 13)).astype(np.float32)  # odd: a last row alone
    assert np.array_equal(float_order.conv2d(pixel, one_by_one, None, (1, 1), "SAME"),
                          float_twins.tflite_conv2d(pixel, one_by_one, None))
    flat, weights = x.reshape(2, -1)[:, :21], rng.normal(0, 1, (7, 21)).astype(np.float32)
    for rows in (flat, flat[:1]):  # a 2-row product, and the matrix-vector one
        assert np.array_equal(float_order.fully_connected(rows, weights, bias[:7]),
                              float_twins.tflite_fully_connected(rows, weights, bias[:7]))
    depthwise = rng.normal(0, 1, (1, 3, 3, 6)).astype(np.float32)
    for stride in ((1, 1), (2, 2)):
        fast = float_order.depthwise_conv2d(x, depthwise, bias[:6], stride, "SAME", 2)
        assert np.array_equal(fast, float_twins.tflite_depthwise_conv2d(x, depthwise, bias[:6], stride,
                                                                          "SAME", 2))
    values = np.linspace(-4, 4, 23, dtype=np.float32)  # 23 = 5 steps of 4 and a tail of 3
    assert np.array_equal(float_order.hard_swish(values), float_twins.tflite_hard_swish(values))
    for axes, keep in (((1, 2), True), ((0, 2), False)):
        assert np.array_equal(float_order.mean(x, axes, keep), float_twins.tflite_mean(x, axes, keep))
    for shape in ((5, 17), (2, 40), (1, 5)):  # rows off the 8-float alignment; two registers; one short row
        logits = rng.normal(0, 4, shape).astype(np.float32)
        assert np.array_equal(float_order.softmax(logits, 0.5), float_twins.tflite_softmax(logits, 0.5))


def test_float_order_auto_is_tflite_order_only_where_hybrid_ops_quantize(tf, files) -> None:
    """"auto": TFLite's order in a dynamic-range graph, BLAS in a float one; a wrong name is one line."""
    from mobilenet_np.int8 import float_blas, float_graph

    dynamic, plain = load_tflite(files["v2"]).graph, load_tflite(converted_files(tf)["float32"]).graph
    assert float_graph.float_kernels(dynamic, "auto") is float_order
    assert float_graph.float_kernels(plain, "auto") is float_blas
    assert float_graph.float_kernels(plain, "tflite") is float_order
    with pytest.raises(InputError, match="float_order must be one of auto, tflite, blas"):
        load_tflite(files["v2"], float_order="exact")
