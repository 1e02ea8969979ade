"""Fixtures and the seeded Hypothesis profile; the helpers themselves live in ``tests/helpers/``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.data import PRETRAINED, PRETRAINED_NAME, images, preprocess_photo
from helpers.gold import import_tensorflow, keras_mobilenet, set_keras_weights
from hypothesis import settings

# Hypothesis draws the same cases on every run (seeded), so CI and a laptop test the same inputs.
settings.register_profile("seeded", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("seeded")


@pytest.fixture(scope="session")
def pretrained_path() -> Path:
    """The real 0.25/224 ImageNet weights, or a skip that says where they were looked for."""
    if not PRETRAINED.is_file():
        pytest.skip(f"needs the real ImageNet weights {PRETRAINED_NAME} (run `mobilenet-np "
                    f"weights download --alpha 0.25`, or set MOBILENET_NP_PRETRAINED); a fresh "
                    f"clone has none")
    return PRETRAINED


@pytest.fixture(scope="session")
def tf():
    """The TensorFlow module (skips with a reason when it is not installed)."""
    return import_tensorflow()


@pytest.fixture(scope="session")
def int8_models(tf, request):
    """name -> (.tflite bytes from TFLite's converter, float test images), each converted at most
    once per session (models and calibration sets: tests/helpers/int8_cases.py)."""
    from helpers import int8_cases  # imports TensorFlow's helpers: loaded lazily

    cache: dict[str, tuple[bytes, np.ndarray]] = {}

    def get(name: str) -> tuple[bytes, np.ndarray]:
        if name not in cache:
            path = request.getfixturevalue("pretrained_path") if name == "v1-real" else None
            ours, arch = int8_cases.float_model(name, path)
            resolution = ours.input_shape[0]
            keras_model = keras_mobilenet(ours.alpha, resolution, arch)
            set_keras_weights(keras_model, ours.layers, ours.params)
            if name == "v1-real":
                cbook = pytest.importorskip("matplotlib.cbook", reason="grace_hopper.jpg is matplotlib's")
                photo = preprocess_photo(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
                tests = np.concatenate([photo[None], images((224, 224, 3), 2, seed=11)])
            else:
                tests = images((resolution, resolution, 3), 2, 11, *int8_cases.pixel_range(arch))
            blob = int8_cases.convert(tf, keras_model, int8_cases.calibration_images(name))
            cache[name] = blob, tests
        return cache[name]
    return get
