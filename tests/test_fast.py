"""The fast path (BN folded, fused ReLU6, banded depthwise) equals the readable path.

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

from mobilenet_np import MobileNet, MobileNetV2, MobileNetV3Large, MobileNetV3Small, ops
from mobilenet_np.fast import Depthwise, fold_batch_norm
from mobilenet_np.layers import Layer

CONFIGS = [(MobileNet, dict(alpha=0.25, resolution=128)),
           (MobileNet, dict(alpha=0.75, resolution=224)),
           (MobileNet, dict(alpha=0.5, resolution=(97, 131), include_top=False, pooling="avg")),
           (MobileNet, dict(alpha=1.0, resolution=160, include_top=False)),
           (MobileNet, dict(alpha=0.5, resolution=64, include_top=False, pooling="max")),
           (MobileNetV2, dict(alpha=1.4, resolution=96)),
           (MobileNetV2, dict(alpha=0.35, resolution=(97, 131), include_top=False)),
           (MobileNetV3Large, dict(resolution=160)),
           (MobileNetV3Large, dict(alpha=0.75, minimalistic=True, include_top=False,
                                   pooling="avg")),
           (MobileNetV3Small, dict(resolution=(128, 96))),
           (MobileNetV3Small, dict(minimalistic=True, include_preprocessing=False))]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


@pytest.mark.parametrize(("family", "config"), CONFIGS)
def test_fast_equals_readable_on_random_weights(family, config) -> None:
    model = family(weights=None, seed=9, **config)
    assert model.fast_plan() is not None
    x = model.random_input(3)
    readable = model.forward(x, output="logits")
    fast = model.predict(x, batch_size=2)
    one_ulp = np.sign(np.random.default_rng(1).standard_normal(x.shape)).astype(np.float32)
    nudged = model.forward(x * (1 + np.finfo(np.float32).eps * one_ulp), output="logits")
    if model.include_top:  # compare log-probabilities: logits up to a constant per row
        fast, readable, nudged = np.log(fast), log_softmax(readable), log_softmax(nudged)
    sensitivity = np.abs(nudged - readable).max()
    assert fast.shape == readable.shape
    bound = max(2e-5 * (1 + np.abs(readable).max()), 8 * sensitivity)
    assert np.abs(fast - readable).max() <= bound


def test_fast_equals_readable_on_real_weights(pretrained_path) -> None:
    model = MobileNet(alpha=0.25, resolution=224, weights=pretrained_path)
    x = model.random_input(2)
    assert np.abs(model.predict(x) - model.predict(x, fast=False)).max() <= 1e-6


def test_depth_multiplier_above_one_falls_back_to_the_readable_path() -> None:
    model = MobileNet(alpha=0.25, resolution=64, depth_multiplier=2, weights=None)
    x = model.random_input(1)
    assert model.fast_plan() is None
    np.testing.assert_array_equal(model.predict(x), model.forward(x))


def test_folding_batch_norm_is_the_same_algebra() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 9, 9, 4)).astype(np.float32)
    gamma, beta, mean = (rng.normal(size=6).astype(np.float32) for _ in range(3))
    variance = rng.uniform(0.5, 2, 6).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 4, 6)).astype(np.float32)
    expected = ops.batch_norm(ops.conv2d(x, kernel), gamma, beta, mean, variance)
    folded, bias = fold_batch_norm(kernel, gamma, beta, mean, variance)
    np.testing.assert_allclose(ops.conv2d(x, folded, bias), expected, rtol=1e-5, atol=1e-5)
    dw_kernel = rng.normal(size=(3, 3, 3, 2)).astype(np.float32)  # C=3, M=2 -> 6 channels
    expected = ops.batch_norm(ops.depthwise_conv2d(x[..., :3], dw_kernel), gamma, beta, mean,
                              variance)
    folded, bias = fold_batch_norm(dw_kernel, gamma, beta, mean, variance, depthwise=True)
    np.testing.assert_allclose(ops.depthwise_conv2d(x[..., :3], folded, bias), expected,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("size", "stride", "pads"), [(16, 1, ((1, 1), (1, 1))),
                                                      (15, 2, ((0, 1), (0, 1))),
                                                      (40, 2, ((1, 1), (0, 2)))])
def test_banded_depthwise_matches_ops_across_band_edges(monkeypatch, size, stride, pads) -> None:
    """Bands of 3 rows force many band edges, each needing the right padded input rows."""
    rng = np.random.default_rng(1)
    channels = 8
    x = rng.uniform(-3, 3, (2, size, size + 3, channels)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, channels, 1)).astype(np.float32)
    bias = rng.normal(size=channels).astype(np.float32)
    expected = ops.relu6(ops.depthwise_conv2d(x, kernel, bias, stride, pads))
    layer = Layer("dw", "depthwise_conv2d", x.shape[1:], expected.shape[1:], kernel=3,
                  stride=stride, padding="valid")
    monkeypatch.setattr("mobilenet_np.fast.BAND_BYTES", 3 * expected.shape[2] * channels * 4)
    got = Depthwise(layer, pads, kernel, bias)(x)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)
