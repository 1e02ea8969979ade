"""The gold models: TensorFlow and Keras, imported only by the tests that need them."""

from __future__ import annotations

import functools
import os

import pytest


def import_tensorflow():
    """TensorFlow, or a skip that says why (the test extra installs it; CI always has it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return pytest.importorskip(
        "tensorflow", reason="needs TensorFlow, the gold model: pip install -e '.[test]'"
    )

def set_keras_weights(keras_model, layers, params) -> None:
    """Copy our params into a Keras model, layer by layer, by Keras layer name."""
    for layer in layers:
        if layer.weights:
            keras_model.get_layer(layer.name).set_weights(
                [params[f"{layer.name}/{weight}"] for weight in layer.weights])

@functools.cache
def keras_mobilenet(alpha: float, resolution: int, arch: str = "v1", **options):
    """One Keras model per (alpha, resolution, family) per session: building is the slow part."""
    import keras

    build = {"v1": keras.applications.MobileNet, "v2": keras.applications.MobileNetV2,
             "v3-large": keras.applications.MobileNetV3Large,
             "v3-small": keras.applications.MobileNetV3Small}[arch]
    return build(input_shape=(resolution, resolution, 3), alpha=alpha, weights=None, **options)
