"""Fast kernels vs their loop twins vs TensorFlow, on seeded generated cases.

Tolerance: the float32 rounding bound of ``conftest.rounding_bound`` (Higham), computed per
output element from the same convolution on |x| and |w|. It scales with the number of summed
terms and their size, so it is tight for small sums and honest for large ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from conftest import assert_within_rounding
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mobilenet_np import ops, reference

CASES = 200  # per kernel and per comparison, as the foundation issue asks


@dataclass
class ConvCase:
    """One generated convolution problem (shapes, stride, padding and seeded arrays)."""

    x: np.ndarray  # (N, H, W, Cin)
    kernel: np.ndarray  # conv: (kh, kw, Cin // groups, Cout); depthwise: (kh, kw, C, M)
    bias: np.ndarray | None
    stride: int
    padding: object
    groups: int = 1
    depthwise: bool = False

    def run(self, module, x=None, kernel=None, bias=None) -> np.ndarray:
        """Run ``module``'s kernel (``ops`` or ``reference``) on this case, or on replaced arrays."""
        x = self.x if x is None else x
        kernel = self.kernel if kernel is None else kernel
        bias = self.bias if bias is None else bias
        if self.depthwise:
            return module.depthwise_conv2d(x, kernel, bias, self.stride, self.padding)
        return module.conv2d(x, kernel, bias, self.stride, self.padding, self.groups)

    def abs_sum(self) -> np.ndarray:
        """The same convolution on |x|, |w| and |bias|: the size of what each output sums."""
        bias = None if self.bias is None else np.abs(self.bias)
        return self.run(ops, np.abs(self.x), np.abs(self.kernel), bias)

    def terms(self) -> int:
        """How many rounded additions each output element takes (taps x channels, + bias)."""
        kh, kw, cin, _ = self.kernel.shape
        return kh * kw * (1 if self.depthwise else cin) + 1

    def tf_padding(self):
        """The same padding in ``tf.nn``'s spelling."""
        if isinstance(self.padding, str):
            return self.padding.upper()
        return [[0, 0], list(self.padding[0]), list(self.padding[1]), [0, 0]]


paddings = st.one_of(
    st.sampled_from(["same", "valid"]),
    st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)),
              st.tuples(st.integers(0, 2), st.integers(0, 2))),
)


@st.composite
def conv_cases(draw, depthwise: bool = False, keras_grouped: bool = False) -> ConvCase:
    """Draw shapes (odd, even, non-square), kernel 1/3/5, stride 1/2, any padding form.

    ``keras_grouped`` draws only what Keras ``Conv2D`` takes: string padding and groups > 1.
    """
    n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kh, kw = draw(st.sampled_from([(1, 1), (3, 3), (5, 5), (3, 1), (1, 5), (2, 2)]))
    stride = draw(st.sampled_from([1, 2]))
    padding = draw(st.sampled_from(["same", "valid"]) if keras_grouped else paddings)
    if padding != "same":  # "same" always fits; the others need kernel <= padded input
        pads = ((0, 0), (0, 0)) if padding == "valid" else padding
        assume(kh <= h + sum(pads[0]) and kw <= w + sum(pads[1]))
    if depthwise:
        groups, channels = 1, draw(st.integers(1, 6))
        kernel_shape = (kh, kw, channels, draw(st.sampled_from([1, 2])))
        out_channels = channels * kernel_shape[3]
    else:
        groups = draw(st.sampled_from([2, 3] if keras_grouped else [1, 1, 2, 3]))
        channels = groups * draw(st.integers(1, 3))
        out_channels = groups * draw(st.integers(1, 3))
        kernel_shape = (kh, kw, channels // groups, out_channels)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.uniform(-1, 1, (n, h, w, channels)).astype(np.float32)
    kernel = rng.standard_normal(kernel_shape).astype(np.float32)
    bias = rng.standard_normal(out_channels).astype(np.float32) if draw(st.booleans()) else None
    return ConvCase(x, kernel, bias, stride, padding, groups, depthwise)


@settings(max_examples=CASES)
@given(conv_cases())
def test_conv2d_loop_twin_matches_fast(case: ConvCase) -> None:
    assert_within_rounding(case.run(ops), case.run(reference), case.abs_sum(), case.terms())


@settings(max_examples=CASES)
@given(conv_cases(depthwise=True))
def test_depthwise_loop_twin_matches_fast(case: ConvCase) -> None:
    assert_within_rounding(case.run(ops), case.run(reference), case.abs_sum(), case.terms())


@settings(max_examples=CASES)
@given(conv_cases(), st.booleans())
def test_pointwise_loop_twin_matches_fast(case: ConvCase, four_d: bool) -> None:
    kernel = case.x[0, 0, 0, :, None] * case.kernel[0, 0, 0]  # (Cin, Cout), any values
    if four_d:
        kernel = kernel[None, None]  # (1, 1, Cin, Cout)
    fast = ops.pointwise_conv2d(case.x, kernel, case.bias)
    loop = reference.pointwise_conv2d(case.x, kernel, case.bias)
    abs_sum = ops.pointwise_conv2d(np.abs(case.x), np.abs(kernel),
                                   None if case.bias is None else np.abs(case.bias))
    assert_within_rounding(fast, loop, abs_sum, case.x.shape[3] + 1)


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
