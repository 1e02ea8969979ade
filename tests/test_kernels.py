"""Vectorised kernels (ops.py) vs their loop twins vs TensorFlow, on seeded generated cases.

Tolerance: the float32 rounding bound of ``helpers.bounds.rounding_bound`` (Higham), computed per
output element from the same convolution on |x| and |w|. It scales with the number of summed
terms and their size, so it is tight for small sums and honest for large ones.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.bounds import assert_within_rounding
from helpers.cases import CASES, ConvCase, conv_cases
from hypothesis import given, settings
from hypothesis import strategies as st

from mobilenet_np import ops, reference

pytestmark = pytest.mark.numerical  # .ci/run runs these with other BLAS kernels too


@settings(max_examples=CASES)
@given(conv_cases())
def test_conv2d_loop_twin_matches_vectorised(case: ConvCase) -> None:
    assert_within_rounding(case.run(ops), case.run(reference), case.abs_sum(), case.terms())


@settings(max_examples=CASES)
@given(conv_cases(depthwise=True))
def test_depthwise_loop_twin_matches_vectorised(case: ConvCase) -> None:
    assert_within_rounding(case.run(ops), case.run(reference), case.abs_sum(), case.terms())


@settings(max_examples=CASES)
@given(conv_cases(), st.booleans())
def test_pointwise_loop_twin_matches_vectorised(case: ConvCase, four_d: bool) -> None:
    kernel = case.x[0, 0, 0, :, None] * case.kernel[0, 0, 0]  # (Cin, Cout), any values
    if four_d:
        kernel = kernel[None, None]  # (1, 1, Cin, Cout)
    vectorised = ops.pointwise_conv2d(case.x, kernel, case.bias)
    loop = reference.pointwise_conv2d(case.x, kernel, case.bias)
    abs_sum = ops.pointwise_conv2d(np.abs(case.x), np.abs(kernel),
                                   None if case.bias is None else np.abs(case.bias))
    assert_within_rounding(vectorised, loop, abs_sum, case.x.shape[3] + 1)


@settings(max_examples=CASES)
@given(conv_cases())
def test_conv2d_matches_tensorflow(tf, case: ConvCase) -> None:
    expected = tf.nn.conv2d(case.x, case.kernel, case.stride, case.tf_padding()).numpy()
    if case.bias is not None:
        expected = expected + case.bias
    for ours in (case.run(ops), case.run(reference)):
        assert_within_rounding(ours, expected, case.abs_sum(), case.terms())


@settings(max_examples=CASES)
@given(conv_cases(depthwise=True))
def test_depthwise_matches_tensorflow(tf, case: ConvCase) -> None:
    strides = [1, case.stride, case.stride, 1]
    expected = tf.nn.depthwise_conv2d(case.x, case.kernel, strides, case.tf_padding()).numpy()
    if case.bias is not None:
        expected = expected + case.bias
    for ours in (case.run(ops), case.run(reference)):
        assert_within_rounding(ours, expected, case.abs_sum(), case.terms())


@settings(max_examples=CASES)
@given(conv_cases())
def test_pointwise_matches_tensorflow(tf, case: ConvCase) -> None:
    kernel = case.kernel[:1, :1, :1, :] * case.x[0, 0, 0, :, None]  # (1, 1, Cin, Cout)
    expected = tf.nn.conv2d(case.x, kernel, 1, "VALID").numpy()
    abs_sum = ops.pointwise_conv2d(np.abs(case.x), np.abs(kernel))
    for ours in (ops.pointwise_conv2d(case.x, kernel), reference.pointwise_conv2d(case.x, kernel)):
        assert_within_rounding(ours, expected, abs_sum, case.x.shape[3])


@settings(max_examples=50)
@given(conv_cases(depthwise=True))
def test_depthwise_is_conv2d_with_one_group_per_channel(case: ConvCase) -> None:
    """The two ends of one family: depthwise == grouped conv with groups = C."""
    kh, kw, channels, multiplier = case.kernel.shape
    grouped_kernel = case.kernel.reshape(kh, kw, 1, channels * multiplier)  # filter c*M+m
    grouped = ops.conv2d(case.x, grouped_kernel, case.bias, case.stride, case.padding,
                         groups=channels)
    assert_within_rounding(grouped, case.run(ops), case.abs_sum(), case.terms())


@settings(max_examples=50)
@given(conv_cases(keras_grouped=True))
def test_grouped_conv2d_matches_keras(tf, case: ConvCase) -> None:
    """Keras ``Conv2D(groups=...)`` is the gold model for grouped convolution."""
    import keras

    layer = keras.layers.Conv2D(case.kernel.shape[3], case.kernel.shape[:2], case.stride,
                                padding=case.padding, groups=case.groups,
                                use_bias=case.bias is not None)
    layer.build(case.x.shape)
    layer.set_weights([case.kernel] + ([case.bias] if case.bias is not None else []))
    expected = np.asarray(layer(case.x))
    assert_within_rounding(case.run(ops), expected, case.abs_sum(), case.terms())
