"""TensorFlow's "same" padding rule, the small ops, and clear errors on bad kernel input."""

from __future__ import annotations

import numpy as np
import pytest

from mobilenet_np import InputError, ops, reference
from mobilenet_np.shapes import same_padding

RNG = np.random.default_rng(7)
X = RNG.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
K = RNG.standard_normal((3, 3, 3, 4)).astype(np.float32)
DW = RNG.standard_normal((3, 3, 3, 1)).astype(np.float32)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pads"),
    [(224, 3, 2, (0, 1)), (225, 3, 2, (1, 1)), (7, 3, 1, (1, 1)), (8, 5, 1, (2, 2)),
     (8, 2, 1, (0, 1)), (5, 1, 2, (0, 0)), (4, 5, 2, (1, 2))],
)
def test_same_padding_puts_the_extra_pixel_at_the_end(size, kernel, stride, pads) -> None:
    assert same_padding(size, kernel, stride) == pads


@pytest.mark.parametrize("module", [ops, reference])
def test_stride2_same_differs_from_symmetric_padding(module) -> None:
    """On an even input, TF's stride-2 "same" pads (0, 1); symmetric (1, 1) gives other numbers."""
    same = module.conv2d(X, K, stride=2, padding="same")
    explicit = module.conv2d(X, K, stride=2, padding=((0, 1), (0, 1)))
    symmetric = module.conv2d(X, K, stride=2, padding=((1, 1), (1, 1)))[:, :4, :4]
    np.testing.assert_array_equal(same, explicit)
    assert same.shape == symmetric.shape == (1, 4, 4, 4)
    assert np.abs(same - symmetric).max() > 0.1
    dw_same = module.depthwise_conv2d(X, DW, stride=2, padding="same")
    dw_symmetric = module.depthwise_conv2d(X, DW, stride=2, padding=((1, 1), (1, 1)))[:, :4, :4]
    assert np.abs(dw_same - dw_symmetric).max() > 0.1


def test_integer_and_float64_inputs_compute_in_float32() -> None:
    x_int = RNG.integers(-3, 4, (1, 5, 5, 3))
    out = ops.conv2d(x_int, K.astype(np.float64))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ops.conv2d(x_int.astype(np.float32), K), rtol=1e-6)
    assert reference.depthwise_conv2d(x_int, DW).dtype == np.float32


def test_batch_norm_relu6_pools_softmax() -> None:
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32) * 10
    gamma, beta, mean = (RNG.standard_normal(5).astype(np.float32) for _ in range(3))
    variance = RNG.uniform(0.5, 2, 5).astype(np.float32)
    expected = gamma * (x.astype(np.float64) - mean) / np.sqrt(variance + 1e-3) + beta
    np.testing.assert_allclose(ops.batch_norm(x, gamma, beta, mean, variance), expected,
                               rtol=1e-5, atol=1e-5)
    relu = ops.relu6(x)
    assert relu.min() == 0 and relu.max() == 6 and np.array_equal(relu[(x > 0) & (x < 6)],
                                                                 x[(x > 0) & (x < 6)])
    assert ops.global_average_pool(x).shape == (2, 5)
    assert ops.global_average_pool(x, keepdims=True).shape == (2, 1, 1, 5)
    np.testing.assert_allclose(ops.global_average_pool(x), x.mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_array_equal(ops.global_max_pool(x), x.max(axis=(1, 2)))
    assert ops.zero_pad(x, ((0, 1), (2, 0))).shape == (2, 4, 6, 5)
    huge = np.array([[1000.0, 1001.0, -1000.0]])
    probs = ops.softmax(huge)
    assert np.all(np.isfinite(probs)) and abs(probs.sum() - 1) < 1e-6
    np.testing.assert_allclose(probs[0, :2], [1 / (1 + np.e), np.e / (1 + np.e)], rtol=1e-6)


BAD_CALLS = [
    ("x must be 4-D", lambda m: m.conv2d(X[0], K)),
    ("kernel must be 4-D", lambda m: m.conv2d(X, K[0])),
    ("expects 2 input channels", lambda m: m.conv2d(X, K[:, :, :2])),
    ("groups=2 must divide", lambda m: m.conv2d(X, K, groups=2)),
    ("groups must be a positive int", lambda m: m.conv2d(X, K, groups=0)),
    ("stride must be a positive int", lambda m: m.conv2d(X, K, stride=0)),
    ("stride must be a positive int", lambda m: m.depthwise_conv2d(X, DW, stride=-1)),
    ("larger than the padded input", lambda m: m.conv2d(X[:, :2, :2], K, padding="valid")),
    ("larger than the padded input", lambda m: m.depthwise_conv2d(X[:, :2], DW, padding="valid")),
    ("padding must be 'same', 'valid'", lambda m: m.conv2d(X, K, padding="full")),
    ("padding must be 'same', 'valid'", lambda m: m.conv2d(X, K, padding=(1, 2))),
    ("padding amounts must be >= 0", lambda m: m.conv2d(X, K, padding=((0, -1), (0, 0)))),
    ("is for 2 channels", lambda m: m.depthwise_conv2d(X, DW[:, :, :2])),
    ("kernel must be 4-D", lambda m: m.depthwise_conv2d(X, DW[0])),
    ("bias must have shape (4,)", lambda m: m.conv2d(X, K, bias=np.zeros(3))),
    ("bias must have shape (3,)", lambda m: m.depthwise_conv2d(X, DW, bias=np.zeros(4))),
    ("kernel must be (1, 1, Cin, Cout)", lambda m: m.pointwise_conv2d(X, K)),
    ("kernel expects 4 input channels", lambda m: m.pointwise_conv2d(X, np.ones((4, 2)))),
    ("x must be 4-D", lambda m: m.pointwise_conv2d(X[0], np.ones((3, 2)))),
]


@pytest.mark.parametrize("module", [ops, reference])
@pytest.mark.parametrize(("message", "call"), BAD_CALLS)
def test_bad_shapes_raise_clear_value_errors(module, message, call) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(module)


@pytest.mark.parametrize(
    "call",
    [lambda: ops.conv2d(X.astype(complex), K), lambda: ops.conv2d(X, K.astype(object)),
     lambda: reference.depthwise_conv2d(np.array([["a"]]), DW),
     lambda: ops.relu6(np.array([True])), lambda: ops.softmax(np.array(["x"]))],
)
def test_non_numeric_dtypes_raise_type_error(call) -> None:
    with pytest.raises(InputError, match="must hold integers or floats"):
        call()


def test_batch_norm_names_the_mismatched_statistic() -> None:
    ones = np.ones(3, np.float32)
    with pytest.raises(ValueError, match=r"variance must have shape \(3,\)"):
        ops.batch_norm(X, ones, ones, ones, np.ones(4))
