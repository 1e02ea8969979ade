"""MobileNetV4 test weights and inputs, made by NumPy alone: the fixture script
(``scripts/make_v4_fixtures.py``, run where timm is installed) and the tests make the same ones.

He-normal kernels, random BN gamma/beta/means and layer scales in [0.5, 1.5], BN variances
measured on a seeded batch (``random_init.calibrate_batch_norm``: logits that neither vanish
nor explode). He-normal query and key kernels on BN-normalised inputs already make attention
far from uniform (each query's largest weight is 0.4-0.6 of 49 key positions in
hybrid-medium, not 1/49; tested), so that a wrong head order cannot average out unseen;
sharper attention (queries x 1.5: 0.6-0.8) makes the network chaotic, its outputs moving 10x
more for one ulp of input.
"""

from __future__ import annotations

import numpy as np

from mobilenet_np.model import Network
from mobilenet_np.random_init import calibrate_batch_norm, random_weights
from mobilenet_np.registry import get_family
from mobilenet_np.stored import Stored

VARIANTS = ("conv-small", "conv-medium", "conv-large", "hybrid-medium", "hybrid-large")
TIMM_NAMES = {"conv-small": "mobilenetv4_conv_small.e2400_r224_in1k",
              "conv-medium": "mobilenetv4_conv_medium.e500_r224_in1k",
              "conv-large": "mobilenetv4_conv_large.e500_r256_in1k",
              "hybrid-medium": "mobilenetv4_hybrid_medium.ix_e550_r256_in1k",
              "hybrid-large": "mobilenetv4_hybrid_large.ix_e600_r384_in1k"}
RESOLUTION, IMAGES, SEED = 224, 2, 24


def seeded_input(seed: int = SEED + 1) -> np.ndarray:
    """(IMAGES, 224, 224, 3) float32 in [-1, 1]: inside the range of ImageNet-normalised images."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (IMAGES, RESOLUTION, RESOLUTION, 3)).astype(np.float32)


def seeded_params(variant: str) -> dict[str, np.ndarray]:
    """The seeded, calibrated weights of one variant: ``Params``."""
    family = get_family(f"v4-{variant}")
    layers = family.layers(resolution=RESOLUTION, include_preprocessing=False)
    params = random_weights(layers, SEED)
    # Four calibration images: with two, conv-large (no layer scale) measured variances that
    # let one test image grow 50x through its residual stream (logits ~1000).
    calibration = np.random.default_rng(SEED + 3).uniform(-1, 1, (4, RESOLUTION, RESOLUTION, 3))
    return calibrate_batch_norm(layers[:-1], params, calibration.astype(np.float32))


def as_stored(params: dict[str, np.ndarray]) -> Stored:
    """Params ("layer/weight" -> array) as a file's ``Stored`` {layer: {weight: array}}."""
    stored = Stored()
    for key, array in params.items():
        layer, _, weight = key.rpartition("/")
        stored.setdefault(layer, {})[weight] = array
    return stored


def seeded_model(variant: str, **options) -> Network:
    """The variant with ``seeded_params``, taking normalised images as timm's model does."""
    family = get_family(f"v4-{variant}")
    return Network(family, as_stored(seeded_params(variant)), resolution=RESOLUTION,
                   include_preprocessing=False, **options)


def first_attention(variant: str) -> str | None:
    """The first attention block's name (e.g. ``blocks.2.4``), whose output the fixtures keep."""
    layers = get_family(f"v4-{variant}").layers(resolution=RESOLUTION)
    return next((layer.block for layer in layers if layer.kind == "mobile_mqa"), None)
