"""MobileNetV2 vs Keras ``applications.MobileNetV2``: outputs, counts and weight files.

Same method as test_model_parity.py: shared re-randomised weights (Keras's init makes outputs
vanish), logits within ``parity_rtol`` x (1 + max |logit|) (conftest: 3.1e-5 for V2 1.0),
probabilities within what that allows through the softmax (``softmax_bound``).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.bounds import parity_rtol, softmax_bound
from helpers.data import images, write_legacy_h5
from helpers.gold import keras_mobilenet, set_keras_weights

from mobilenet_np import MobileNetV2
from mobilenet_np.cost import network_cost
from mobilenet_np.families.v2 import V2
from mobilenet_np.layers import make_divisible
from mobilenet_np.weights import convert

pytestmark = pytest.mark.numerical  # .ci/run runs these with other BLAS kernels too

ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
PAIRS = [(a, r) for a in ALPHAS for r in (224, 160, 96)]


@pytest.mark.parametrize(("alpha", "resolution"), PAIRS)
def test_v2_logits_and_probabilities_match_keras(tf, alpha, resolution) -> None:
    import keras

    ours = MobileNetV2(alpha=alpha, resolution=resolution, weights=None, seed=resolution)
    theirs = keras_mobilenet(alpha, resolution, "v2")
    set_keras_weights(theirs, ours.layers, ours.params)
    x = images((resolution, resolution, 3))
    dense = theirs.get_layer("predictions")
    pooled = keras.Model(theirs.input, dense.input)(x)
    keras_logits = np.asarray(pooled) @ dense.get_weights()[0] + dense.get_weights()[1]
    keras_probs = np.asarray(theirs(x))
    scale, rtol = 1 + np.abs(keras_logits).max(), parity_rtol(ours.layers)
    assert keras_logits.std(axis=1).min() > 0.5
    assert np.abs(keras_logits[0] - keras_logits[1]).max() > 20 * rtol * scale
    logits = ours.forward(x, output="logits")
    print(f"v2 alpha={alpha} resolution={resolution}: max |logit error| "
          f"{np.abs(logits - keras_logits).max():.2e} (scale {scale:.1f})")
    assert np.abs(logits - keras_logits).max() <= rtol * scale
    for fused in (True, False):
        assert np.abs(ours.predict(x, fused=fused) - keras_probs).max() <= \
            softmax_bound(keras_probs, rtol * scale)


@pytest.mark.parametrize("shape", [(97, 131), (160, 128)])
def test_v2_no_top_odd_sizes_use_kerass_correct_pad(tf, shape) -> None:
    import keras

    ours = MobileNetV2(alpha=0.5, resolution=shape, include_top=False, pooling="avg",
                       weights=None, seed=2)
    theirs = keras.applications.MobileNetV2(input_shape=(*shape, 3), alpha=0.5, weights=None,
                                            include_top=False, pooling="avg")
    set_keras_weights(theirs, ours.layers, ours.params)
    x = images((*shape, 3))
    expected = np.asarray(theirs(x))
    for features in (ours(x), ours.predict(x)):
        assert features.shape == expected.shape
        assert np.abs(features - expected).max() <= \
            parity_rtol(ours.layers) * (1 + np.abs(expected).max())


@pytest.mark.parametrize(("alpha", "resolution"), PAIRS)
def test_v2_params_equal_keras_count_params(tf, alpha, resolution) -> None:
    model = keras_mobilenet(alpha, resolution, "v2")
    assert network_cost(V2.layers(alpha=alpha, resolution=resolution))["total_params"] == model.count_params()


def test_v2_macs_against_tf_slim_and_the_block_formula() -> None:
    total = network_cost(V2.layers())["total_macs"]
    assert total // 10**6 == 300  # TF-slim mobilenet README: 300M MACs for 1.0/224 (truncated)
    # Independent sum over the paper's Table 2: expand 1x1, depthwise 3x3, project 1x1.
    rows = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1)]
    size, channels = 112, 32
    macs = size * size * 27 * 32
    for t, c, n, s in rows:
        for i in range(n):
            hidden = t * channels
            expand = size * size * channels * hidden if t != 1 else 0
            size = (size + 1) // 2 if (s == 2 and i == 0) else size
            macs += expand + size * size * 9 * hidden + size * size * hidden * c
            channels = c
    macs += size * size * 320 * 1280 + 1280 * 1000
    assert total == macs


def test_make_divisible_like_keras() -> None:
    assert [make_divisible(v) for v in (32 * 0.35, 16 * 0.35, 1280 * 1.3, 24 * 0.75)] == \
        [16, 8, 1664, 24]


@pytest.mark.parametrize("layout", ["legacy", "keras 3"])
def test_v2_weight_files_round_trip(tf, tmp_path, layout) -> None:
    import keras

    original = MobileNetV2(alpha=0.35, resolution=96, weights=None, seed=6)
    if layout == "legacy":
        path = tmp_path / "v2.h5"
        write_legacy_h5(path, original.layers, original.params)
    else:
        path = tmp_path / "v2.weights.h5"
        theirs = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None)
        set_keras_weights(theirs, original.layers, original.params)
        theirs.save_weights(str(path))
    config = convert(path, tmp_path / "v2.npz", V2)
    assert config == {"arch": "v2", "alpha": 0.35, "include_top": True, "classes": 1000}
    x = images((96, 96, 3))
    for source in (path, tmp_path / "v2.npz"):
        loaded = MobileNetV2(alpha=0.35, resolution=96, weights=source)
        np.testing.assert_array_equal(loaded.predict(x), original.predict(x))
    with pytest.raises(ValueError, match="holds MobileNetV2 alpha=0.35"):
        MobileNetV2(alpha=1.0, resolution=96, weights=tmp_path / "v2.npz")
