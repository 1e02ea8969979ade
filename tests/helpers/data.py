"""Test data: where the real weights are, seeded pictures, a photo as V1 takes it, legacy .h5 files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent.parent

PRETRAINED_NAME = "mobilenet_2_5_224_tf.h5"

def find_pretrained() -> Path:
    """The real ImageNet weights (MobileNet V1 0.25/224, official Keras layout), never
    committed: $MOBILENET_NP_PRETRAINED (set by .ci/run), ../shared/weights beside the checkout,
    or the cache the README's own `weights download` fills (ours, then Keras's)."""
    if os.environ.get("MOBILENET_NP_PRETRAINED"):
        return Path(os.environ["MOBILENET_NP_PRETRAINED"])
    cache = Path(os.environ.get("MOBILENET_NP_HOME") or Path.home() / ".cache" / "mobilenet-np")
    candidates = [ROOT.parent / "shared" / "weights", cache, Path.home() / ".keras" / "models"]
    return next((folder / PRETRAINED_NAME for folder in candidates
                 if (folder / PRETRAINED_NAME).is_file()), candidates[0] / PRETRAINED_NAME)

PRETRAINED = find_pretrained()

def images(shape: tuple[int, ...], n: int = 2, seed: int = 0, low: float = -1.0,
           high: float = 1.0) -> np.ndarray:
    """Seeded random pictures in [low, high], (n, H, W, 3): coarse blocks plus noise.

    Pure noise images all look alike after global pooling; coarse blocks make them differ.
    [-1, 1] is preprocess_input's range; MobileNetV3 takes pixels, [0, 255].
    """
    rng = np.random.default_rng(seed)
    height, width, channels = shape
    blocks = rng.uniform(low, high, (n, height // 16 + 1, width // 16 + 1, channels))
    coarse = blocks.repeat(16, axis=1).repeat(16, axis=2)[:, :height, :width]  # (n, H, W, 3)
    return (0.7 * coarse + 0.3 * rng.uniform(low, high, (n, *shape))).astype(np.float32)

def preprocess_photo(path) -> np.ndarray:
    """A photo as V1/V2 take it: (224, 224, 3) in [-1, 1]."""
    import mobilenet_np as mnp

    return mnp.preprocess_input(mnp.load_image(path, 224))

def write_legacy_h5(path, layers, params) -> None:
    """Write params in the legacy Keras HDF5 weights layout (as the official files), with h5py.

    Used where TensorFlow is not needed; the TF round-trip tests check real Keras files too.
    """
    import h5py

    with h5py.File(path, "w") as file:
        names = [layer.name for layer in layers]
        file.attrs["layer_names"] = np.array([n.encode() for n in names])
        for layer in layers:
            group = file.create_group(layer.name)
            weight_names = [f"{layer.name}/{w}:0" for w in layer.weights]
            group.attrs["weight_names"] = np.array([n.encode() for n in weight_names])
            for weight, name in zip(layer.weights, weight_names, strict=True):
                group[name] = params[f"{layer.name}/{weight}"]
