"""The fused path (BN folded, fused ReLU6, banded depthwise) equals the readable path.

Tolerance: folding BN changes the rounding of each layer by a few ulps, nothing more; how far
a few ulps travel depends on the network. So the bound is measured per case: the larger of
the Keras-parity rule (2e-5 x (1 + max |output|)) and 8x how much the readable output moves
when the *input alone* is perturbed by one ulp (every layer rounds, hence the factor). Deep
random networks that keep images apart also amplify round-off (1-ulp input noise moves
MobileNet 1.0/160 features by ~1.5e-4); a wrong fold or bias moves outputs by ~1.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.bounds import assert_within_rounding, log_softmax, roundoff_bound
from helpers.cases import CASES, ConvCase, conv_cases
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mobilenet_np import MobileNet, MobileNetV2, MobileNetV3Large, MobileNetV3Small, ops, reference
from mobilenet_np.fused import Conv, Depthwise
from mobilenet_np.layers import Layer
from mobilenet_np.plan import Unit, fold_batch_norm
from mobilenet_np.shapes import resolve_padding

pytestmark = pytest.mark.numerical  # .ci/run runs these with other BLAS kernels too

CONFIGS = [(MobileNet, dict(alpha=0.25, resolution=128)),
           (MobileNet, dict(alpha=0.75, resolution=224)),
           (MobileNet, dict(alpha=0.5, resolution=(97, 131), include_top=False, pooling="avg")),
           (MobileNet, dict(alpha=1.0, resolution=160, include_top=False)),
           (MobileNet, dict(alpha=0.5, resolution=64, include_top=False, pooling="max")),
           (MobileNet, dict(alpha=0.25, resolution=96, depth_multiplier=2)),
           (MobileNet, dict(alpha=0.25, resolution=(65, 71), depth_multiplier=3)),
           (MobileNetV2, dict(alpha=1.4, resolution=96)),
           (MobileNetV2, dict(alpha=0.35, resolution=(97, 131), include_top=False)),
           (MobileNetV3Large, dict(resolution=160)),
           (MobileNetV3Large, dict(alpha=0.75, minimalistic=True, include_top=False,
                                   pooling="avg")),
           (MobileNetV3Small, dict(resolution=(128, 96))),
           (MobileNetV3Small, dict(minimalistic=True, include_preprocessing=False))]


@pytest.mark.parametrize(("family", "config"), CONFIGS)
def test_fused_equals_readable_on_random_weights(family, config) -> None:
    model = family(weights=None, seed=9, **config)
    x = model.random_input(3)
    readable = model.forward(x, output="logits")
    fused = model.predict(x, batch_size=2, output="logits")
    assert fused.shape == readable.shape
    if model.include_top:  # compare log-probabilities: logits up to a constant per row
        np.testing.assert_array_equal(model.predict(x, batch_size=2), ops.softmax(fused))
        fused, readable = log_softmax(fused), log_softmax(readable)
    assert np.abs(fused - readable).max() <= roundoff_bound(model, x)


def test_fused_equals_readable_on_real_weights(pretrained_path) -> None:
    model = MobileNet(alpha=0.25, resolution=224, weights=pretrained_path)
    x = model.random_input(2)
    bound = roundoff_bound(model, x)  # log-probabilities; a probability moves no further
    assert np.abs(model.predict(x) - model.predict(x, fused=False)).max() <= bound


def test_folding_batch_norm_is_the_same_algebra() -> None:
    """conv(x, W s) + (beta - mean s) vs (conv(x, W) - mean) s + beta, per element within twice
    Higham's bound for the K products plus the 4 roundings around them (the folded weights and
    bias, BN's subtract, multiply and add), on the magnitudes each side sums: |x| |W s|,
    |mean s|, |beta|."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 9, 9, 4)).astype(np.float32)
    gamma, beta, mean = (rng.normal(size=6).astype(np.float32) for _ in range(3))
    variance = rng.uniform(0.5, 2, 6).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 4, 6)).astype(np.float32)
    expected = ops.batch_norm(ops.conv2d(x, kernel), gamma, beta, mean, variance)
    folded, bias = fold_batch_norm(kernel, gamma, beta, mean, variance)
    scale = np.abs(gamma / np.sqrt(variance + np.float32(1e-3)))
    magnitudes = np.abs(mean) * scale + np.abs(beta)
    assert_within_rounding(ops.conv2d(x, folded, bias), expected,
                           ops.conv2d(np.abs(x), np.abs(folded)) + magnitudes, 3 * 3 * 4 + 4)
    dw_kernel = rng.normal(size=(3, 3, 3, 2)).astype(np.float32)  # C=3, M=2 -> 6 channels
    expected = ops.batch_norm(ops.depthwise_conv2d(x[..., :3], dw_kernel), gamma, beta, mean,
                              variance)
    folded, bias = fold_batch_norm(dw_kernel, gamma, beta, mean, variance, depthwise=True)
    assert_within_rounding(ops.depthwise_conv2d(x[..., :3], folded, bias), expected,
                           ops.depthwise_conv2d(np.abs(x[..., :3]), np.abs(folded)) + magnitudes,
                           3 * 3 + 4)


def fused_step(case: ConvCase, activation: str | None, band_rows: int):
    """The fused path's step for a generated case: ``Depthwise`` or ``Conv``, BN already folded."""
    kh, kw = case.kernel.shape[:2]
    expected_shape = case.run(ops).shape[1:]
    layer = Layer("case", "depthwise_conv2d" if case.depthwise else "conv2d", case.x.shape[1:],
                  expected_shape, kernel=kh, stride=case.stride, padding=case.padding)
    bias = np.zeros(expected_shape[2], np.float32) if case.bias is None else case.bias
    pads = resolve_padding(case.padding, case.x.shape[1:3], (kh, kw), (case.stride,) * 2, "case")
    unit = Unit("depthwise" if case.depthwise else "conv", (layer,), kernel=case.kernel, bias=bias,
                stride=case.stride, pads=pads, activation=activation)
    if not case.depthwise:
        return Conv(unit)
    return Depthwise(unit, band_bytes=band_rows * expected_shape[1] * expected_shape[2] * 4)


@settings(max_examples=CASES)
@given(conv_cases(depthwise=True), st.sampled_from([None, "relu6", "relu"]), st.integers(1, 4))
def test_fused_depthwise_matches_its_loop_twin(case: ConvCase, activation, band_rows) -> None:
    """Any kernel shape, stride, padding, depth multiplier; bands of 1-4 rows put band edges
    everywhere."""
    expected = case.run(reference)
    if activation is not None:  # relu and relu6 move no value by more than its input moved
        expected = getattr(ops, activation)(expected)
    got = fused_step(case, activation, band_rows)(case.x)
    assert_within_rounding(got, expected, case.abs_sum(), case.terms())


@settings(max_examples=CASES)
@given(conv_cases(), st.sampled_from([None, "relu6", "relu"]))
def test_fused_conv_matches_its_loop_twin(case: ConvCase, activation) -> None:
    """The gathered im2col: any kernel shape, stride and padding (the stems are 3x3/2)."""
    assume(case.groups == 1)  # grouped convs only exist in the vectorised ops
    expected = case.run(reference)
    if activation is not None:
        expected = getattr(ops, activation)(expected)
    got = fused_step(case, activation, band_rows=1)(case.x)
    assert_within_rounding(got, expected, case.abs_sum(), case.terms())


def test_lanes_give_each_image_its_own_answer() -> None:
    """Chunks of a batch run on two threads come back in order, each image's own result."""
    model = MobileNet(alpha=0.25, resolution=64, weights=None, seed=3)
    x = model.random_input(7, seed=4)
    one_by_one = np.concatenate([model.predict(image[None], threads=1) for image in x])
    assert np.abs(one_by_one[1:] - one_by_one[:-1]).max() > 1e-3  # the images differ
    bound = roundoff_bound(model, x)  # batch size changes BLAS's blocking, so its sum order
    for threads, batch_size in ((2, 8), (2, 3), (3, 2), (1, 4)):
        got = model.predict(x, batch_size=batch_size, threads=threads)
        assert np.abs(got - one_by_one).max() <= bound


@pytest.mark.parametrize("arguments", [dict(batch_size=0), dict(threads=0),
                                       dict(batch_size=2.5), dict(threads="2")])
def test_predict_rejects_bad_batch_size_and_threads(arguments) -> None:
    model = MobileNet(alpha=0.25, resolution=32, weights=None)
    with pytest.raises(ValueError, match="positive integer"):
        model.predict(model.random_input(1), **arguments)
