"""MobileNet V1 in NumPy vs Keras ``applications.MobileNet``, on re-randomised weights.

Keras's own random init makes MobileNet's logits vanish (~1e-18, softmax exactly 1/1000), so
any code would "match". Both models get ``random_weights`` instead (He-normal kernels, random BN
statistics), and the test asserts the logits really spread before comparing.

Tolerance: logits within ``parity_rtol(layers) * (1 + max |logit|)`` (conftest: a random-walk
model of float32 rounding over the L summing layers of up to K terms, 2 u sqrt(L K); 2.0e-5
for V1 1.0), probabilities within what that logit bound allows through the softmax
(``softmax_bound``). The two libraries sum in different orders (oneDNN blocks, our BLAS
matmul); the worst seen over all 16 alpha x resolution pairs is 9.7e-6 on logits of size ~5
(run with -s to print them). A wrong padding, channel order or BN formula moves logits by 1e-2
or more.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.bounds import parity_rtol, softmax_bound
from helpers.data import images
from helpers.gold import keras_mobilenet, set_keras_weights

from mobilenet_np import MobileNet
from mobilenet_np.families.v1 import V1

pytestmark = pytest.mark.numerical  # .ci/run runs these with other BLAS kernels too

PAIRS = [(a, r) for a in (0.25, 0.5, 0.75, 1.0) for r in (128, 160, 192, 224)]
LOGIT_RTOL = parity_rtol(V1.layers())  # V1 1.0/224, the widest V1: 2.0e-5


def keras_logits_and_probs(keras, keras_model, x):
    """Keras's logits (the ``reshape_2`` layer, before softmax) and probabilities."""
    logits_model = keras.Model(keras_model.inputs, keras_model.get_layer("reshape_2").output)
    return np.asarray(logits_model(x)), np.asarray(keras_model(x))


@pytest.mark.parametrize(("alpha", "resolution"), PAIRS)
def test_logits_and_probabilities_match_keras(tf, alpha, resolution) -> None:
    import keras

    ours = MobileNet(alpha=alpha, resolution=resolution, weights=None, seed=resolution)
    theirs = keras_mobilenet(alpha, resolution)
    set_keras_weights(theirs, ours.layers, ours.params)
    x = images((resolution, resolution, 3))
    keras_logits, keras_probs = keras_logits_and_probs(keras, theirs, x)
    logits = ours.forward(x, output="logits")
    # The comparison means something only if the logits are spread over several units and
    # the image moves them far more than the tolerance (deep random nets wash inputs out).
    scale = 1 + np.abs(keras_logits).max()
    assert keras_logits.std(axis=1).min() > 0.5
    assert np.abs(keras_logits[0] - keras_logits[1]).max() > 20 * LOGIT_RTOL * scale
    logit_error = np.abs(logits - keras_logits).max()
    prob_error = np.abs(ours.predict(x) - keras_probs).max()
    print(f"alpha={alpha} resolution={resolution}: max |logit error| {logit_error:.2e} "
          f"(scale {scale:.1f}), max |prob error| {prob_error:.2e}")
    assert logit_error <= LOGIT_RTOL * scale
    assert prob_error <= softmax_bound(keras_probs, LOGIT_RTOL * scale)


@pytest.mark.parametrize(("pooling", "shape"), [("avg", (160, 224)), ("max", (224, 160)),
                                                (None, (97, 131))])
def test_no_top_features_match_keras_on_non_square_input(tf, pooling, shape) -> None:
    import keras

    ours = MobileNet(alpha=0.5, resolution=shape, include_top=False, pooling=pooling,
                     weights=None, seed=3)
    theirs = keras.applications.MobileNet(input_shape=(*shape, 3), alpha=0.5, weights=None,
                                          include_top=False, pooling=pooling)
    set_keras_weights(theirs, ours.layers, ours.params)
    x = images((*shape, 3))
    expected = np.asarray(theirs(x))
    features = ours(x)
    assert features.shape == expected.shape
    assert expected.std() > 0.1
    assert np.abs(features - expected).max() <= LOGIT_RTOL * (1 + np.abs(expected).max())


def test_every_captured_activation_matches_keras(tf) -> None:
    """Layer by layer, so a mismatch names the first layer that is wrong."""
    import keras

    ours = MobileNet(alpha=0.25, resolution=128, weights=None, seed=5)
    theirs = keras.applications.MobileNet(input_shape=(128, 128, 3), alpha=0.25, weights=None)
    set_keras_weights(theirs, ours.layers, ours.params)
    x = images((128, 128, 3), n=1)
    _, activations = ours.forward(x, capture=True)
    names = [name for name in activations if name != "global_average_pooling2d"]
    probe = keras.Model(theirs.inputs, [theirs.get_layer(n).output for n in names])
    for name, expected in zip(names, probe(x), strict=True):
        expected = np.asarray(expected).reshape(activations[name].shape)
        error = np.abs(activations[name] - expected).max()
        assert error <= LOGIT_RTOL * (1 + np.abs(expected).max()), name
