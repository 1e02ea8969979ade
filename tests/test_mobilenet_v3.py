"""MobileNetV3 Small/Large vs Keras: hard-swish and hard-sigmoid, SE blocks, outputs, counts.

Parity: shared re-randomised weights, logits within ``parity_rtol`` x (1 + max |logit|) and
probabilities within what that allows through the softmax (conftest). Keras's V3 models rescale pixels
themselves (include_preprocessing), so both take pixels in [0, 255].
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.bounds import UNIT_ROUNDOFF, parity_rtol, softmax_bound
from helpers.data import images, write_legacy_h5
from helpers.gold import keras_mobilenet, set_keras_weights

from mobilenet_np import MobileNetV3Large, MobileNetV3Small, ops, reference
from mobilenet_np.cost import network_cost
from mobilenet_np.registry import FAMILIES
from mobilenet_np.weights import convert

pytestmark = pytest.mark.numerical  # .ci/run runs these with other BLAS kernels too

MODELS = {"v3-large": MobileNetV3Large, "v3-small": MobileNetV3Small}
CASES = [(arch, minimalistic, alpha) for arch in MODELS for minimalistic in (False, True)
         for alpha in (0.75, 1.0)]


def pixels(shape, n: int = 2, seed: int = 0) -> np.ndarray:
    """Seeded pictures in [0, 255]: what MobileNetV3 (with its own rescaling) takes."""
    return images(shape, n, seed, 0.0, 255.0)


def test_hard_activations_loop_twins_and_keras(tf) -> None:
    import keras

    x = np.concatenate([np.linspace(-5, 5, 1001), [-3, 3, 0]]).astype(np.float32)
    np.testing.assert_allclose(ops.hard_sigmoid(x), reference.hard_sigmoid(x), atol=1e-7)
    np.testing.assert_allclose(ops.hard_swish(x), reference.hard_swish(x), atol=1e-6)
    np.testing.assert_allclose(ops.hard_sigmoid(x), keras.activations.hard_sigmoid(x), atol=1e-7)
    np.testing.assert_allclose(ops.hard_swish(x), keras.activations.hard_swish(x), atol=1e-6)
    assert ops.relu(np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]


@pytest.mark.parametrize(("arch", "minimalistic", "alpha"), CASES)
def test_v3_logits_and_probabilities_match_keras(tf, arch, minimalistic, alpha) -> None:
    import keras

    ours = MODELS[arch](alpha=alpha, minimalistic=minimalistic, weights=None, seed=4)
    theirs = keras_mobilenet(alpha, 224, arch, minimalistic=minimalistic)
    set_keras_weights(theirs, ours.layers, ours.params)
    x = pixels((224, 224, 3))
    logits_model = keras.Model(theirs.input, theirs.get_layer("logits").output)
    keras_logits = np.asarray(logits_model(x)).reshape(2, -1)
    scale, rtol = 1 + np.abs(keras_logits).max(), parity_rtol(ours.layers)
    assert keras_logits.std(axis=1).min() > 0.5
    assert np.abs(keras_logits[0] - keras_logits[1]).max() > 20 * rtol * scale
    error = np.abs(ours.forward(x, output="logits") - keras_logits).max()
    print(f"{arch} minimalistic={minimalistic} alpha={alpha}: max |logit error| {error:.2e} "
          f"(scale {scale:.1f})")
    assert error <= rtol * scale
    keras_probs = np.asarray(theirs(x))
    assert np.abs(ours.predict(x) - keras_probs).max() <= softmax_bound(keras_probs, rtol * scale)


def test_v3_without_preprocessing_and_top_on_a_non_square_input(tf) -> None:
    import keras

    ours = MobileNetV3Small(resolution=(160, 96), include_top=False, pooling="avg", weights=None,
                            include_preprocessing=False, seed=1)
    theirs = keras.applications.MobileNetV3Small(input_shape=(160, 96, 3), include_top=False,
                                                 pooling="avg", weights=None,
                                                 include_preprocessing=False)
    set_keras_weights(theirs, ours.layers, ours.params)
    x = pixels((160, 96, 3)) / 127.5 - 1
    expected = np.asarray(theirs(x))
    assert ours(x).shape == expected.shape
    assert np.abs(ours(x) - expected).max() <= \
        parity_rtol(ours.layers) * (1 + np.abs(expected).max())


@pytest.mark.parametrize(("arch", "minimalistic", "alpha"), CASES)
def test_v3_params_equal_keras_count_params(tf, arch, minimalistic, alpha) -> None:
    model = keras_mobilenet(alpha, 224, arch, minimalistic=minimalistic)
    layers = FAMILIES[arch].layers(alpha=alpha, minimalistic=minimalistic)
    assert network_cost(layers)["total_params"] == model.count_params()


def test_v3_macs_against_the_paper() -> None:
    """The V3 paper (Howard et al. 2019, Tables 3 and 4): Large 1.0 217M, Small 1.0 56M MAdds.

    Ours count every convolution, the SE block's two 1x1 convs (on a 1x1 map, so tiny) and
    the two top 1x1 convs; hard-swish, the SE gate's multiply and pooling are elementwise.
    """
    large = network_cost(FAMILIES["v3-large"].layers())["total_macs"]
    small = network_cost(FAMILIES["v3-small"].layers())["total_macs"]
    assert round(large / 1e6) == 217 and round(small / 1e6) == 57
    assert small // 10**6 == 56  # the paper truncates: 56.51M


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_v3_weight_files_round_trip(tf, tmp_path, arch) -> None:
    import keras

    original = MODELS[arch](alpha=0.75, weights=None, seed=8)
    legacy = tmp_path / "v3.h5"
    write_legacy_h5(legacy, original.layers, original.params)
    keras3 = tmp_path / "v3.weights.h5"
    theirs = {"v3-large": keras.applications.MobileNetV3Large,
              "v3-small": keras.applications.MobileNetV3Small}[arch](alpha=0.75, weights=None)
    set_keras_weights(theirs, original.layers, original.params)
    theirs.save_weights(str(keras3))
    x = pixels((224, 224, 3), n=1)
    for path in (legacy, keras3):
        config = convert(path, tmp_path / "v3.npz", FAMILIES[arch])
        assert config == {"arch": arch, "alpha": 0.75, "minimalistic": False,
                          "include_top": True, "classes": 1000}
        for source in (path, tmp_path / "v3.npz"):
            loaded = MODELS[arch](alpha=0.75, weights=source)
            np.testing.assert_array_equal(loaded.predict(x), original.predict(x))


def se_bound(x, squeeze, squeeze_bias, excite, excite_bias, out) -> np.ndarray:
    """How far two float32 evaluations of squeeze-and-excite may differ, element by element.

    Each sum of k terms may be off by gamma_k times the sum of its terms' magnitudes (Higham),
    in either evaluation (factor 2), plus what the previous stage's error moves it: pooled mean
    (H*W terms), squeeze (C + 1), excite (C' + 1); relu and the clip only shrink errors, the
    gate divides by 6, and the final product adds two roundings of |out|.
    """
    def gamma(k: int) -> float:
        return 2 * k * UNIT_ROUNDOFF / (1 - k * UNIT_ROUNDOFF)

    x64 = np.abs(x.astype(np.float64))
    n, h, w, _ = x.shape
    pooled = x64.mean(axis=(1, 2))  # (N, C): magnitudes
    error = gamma(h * w + 1) * pooled
    hidden = np.abs(squeeze_bias) + pooled @ np.abs(squeeze)  # (N, C')
    error = gamma(squeeze.shape[0] + 1) * hidden + error @ np.abs(squeeze)
    logits = np.abs(excite_bias) + hidden @ np.abs(excite)  # (N, C)
    error = gamma(excite.shape[0] + 1) * logits + error @ np.abs(excite)
    return x64 * (error / 6)[:, None, None, :] + 4 * UNIT_ROUNDOFF * np.abs(out) + 1e-30


@pytest.mark.parametrize("seed", range(20))
def test_squeeze_excite_loop_twin_and_tensorflow(tf, seed) -> None:
    """ops vs loops vs TF's own ops (mean, matmul, relu, relu6(x + 3) / 6, multiply), within
    ``se_bound``: Higham's bound at each of the three sums, carried forward to the output."""
    rng = np.random.default_rng(seed)
    n, h, w, c = rng.integers(1, 3), rng.integers(1, 6), rng.integers(1, 6), rng.integers(2, 9)
    hidden = int(rng.integers(1, 5))
    x = rng.uniform(-2, 2, (n, h, w, c)).astype(np.float32)
    weights = [rng.normal(0, 1, shape).astype(np.float32)
               for shape in ((c, hidden), (hidden,), (hidden, c), (c,))]
    vectorised, loop = ops.squeeze_excite(x, *weights), reference.squeeze_excite(x, *weights)
    pooled = tf.reduce_mean(x, axis=(1, 2))
    gate = tf.nn.relu6(tf.nn.relu(pooled @ weights[0] + weights[1]) @ weights[2] + weights[3]
                       + 3.0) / 6.0
    expected = (x * gate[:, None, None, :]).numpy()
    bound = se_bound(x, *weights, vectorised)
    assert np.all(np.abs(vectorised - loop) <= bound)
    assert np.all(np.abs(vectorised - expected) <= bound)
    with pytest.raises(ValueError, match="do not fit"):
        ops.squeeze_excite(x, weights[0][:-1], weights[1], weights[2], weights[3])
