"""Shared test helpers: the float32 rounding bound, TensorFlow loading, seeded generators."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# Hypothesis draws the same cases on every run (seeded), so CI and a laptop test the same inputs.
settings.register_profile("seeded", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("seeded")

ROOT = Path(__file__).resolve().parent.parent
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
UNIT_ROUNDOFF = 2.0**-24  # float32


def rounding_bound(abs_sum: np.ndarray, terms: int) -> np.ndarray:
    """Largest gap two float32 evaluations of the same sum can have, in any order.

    Higham's bound for a sum of ``terms`` products: |computed - exact| <= gamma * sum |x_i w_i|,
    gamma = terms * u / (1 - terms * u). Two computations (vectorised vs loop vs TensorFlow) may each
    be off by that much in opposite directions, hence the factor 2. ``abs_sum`` is the same
    convolution run on |x| and |w| (plus |bias|); a real bug (wrong tap, wrong padding, wrong
    channel) is off by the size of a whole term, far above this bound.
    """
    gamma = terms * UNIT_ROUNDOFF / (1 - terms * UNIT_ROUNDOFF)
    return 2 * gamma * abs_sum.astype(np.float64) + 1e-30


def assert_within_rounding(actual, expected, abs_sum, terms) -> float:
    """Assert every element is within ``rounding_bound``; return the max abs error seen."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    error = np.abs(actual - expected)
    bound = rounding_bound(np.asarray(abs_sum), terms)
    worst = np.unravel_index(np.argmax(error - bound), error.shape)
    assert np.all(error <= bound), (
        f"error {error[worst]:.3g} above the float32 rounding bound {bound[worst]:.3g} at {worst}"
    )
    return float(error.max())


def parity_rtol(layers) -> float:
    """Relative gap allowed between our logits and Keras's, from a model of float32 rounding.

    Each of the L summing layers on the path (convolutions, the classifier) adds up at most K
    products; a float32 sum of K terms in another order differs by about sqrt(K) u relative
    (u = 2^-24: independent roundings cancel like a random walk; Higham's worst case K u is
    never approached), and L layers' errors add the same way: sqrt(L K) u per computation,
    twice that between two (ours, Keras's). V1 1.0: L = 28, K = 1024 -> 2.0e-5; V2 1.0:
    L = 53, K = 1280 -> 3.1e-5. Used as rtol * (1 + max |logit|); a wrong padding, channel
    order or BN formula moves logits by 1e-2 or more.
    """
    from mobilenet_np.cost import layer_macs

    summing = [layer for layer in layers if layer_macs(layer)]
    widest = max(layer_macs(layer) // int(np.prod(layer.output_shape)) for layer in summing)
    return 2 * UNIT_ROUNDOFF * float(np.sqrt(len(summing) * widest))


def softmax_bound(probs: np.ndarray, logit_bound: float) -> float:
    """How far probabilities may move when every logit moves by at most ``logit_bound``:
    d p_i = p_i (d z_i - sum_j p_j d z_j), so |d p_i| <= 2 p_i max |d z|."""
    return 2 * float(np.max(probs)) * logit_bound


def log_softmax(logits: np.ndarray) -> np.ndarray:
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def roundoff_bound(model, x: np.ndarray) -> float:
    """How far two float32 runs of ``model`` on x may drift apart when only the order of their
    sums differs: fused vs readable path, one batch size or BLAS kernel (AVX2, AVX-512) vs
    another. In log-probabilities (features without a top); a probability moves by at most
    its log-probability's change, as p <= 1, so it bounds probabilities too.

    How far round-off travels depends on the network, so the bound is measured per case: the
    output change caused by perturbing the *input alone* by one ulp, times 8. Each layer
    rounds its sums once, by a few ulps, and the layers after it carry that as they carry an
    input ulp; independent layers' errors add like a random walk (sqrt(28) = 5.3 < 8 for
    V1's 28 convolutions): ``one_ulp_reach``. Floor: the Keras-parity rule
    ``parity_rtol`` x (1 + max |output|). A real bug (a wrong fold, bias or tap) moves outputs
    by ~1.
    """
    readable = model.forward(x, output="logits")
    if model.include_top:  # logits matter only up to a constant per row
        readable = log_softmax(readable)
    floor = parity_rtol(model.layers) * (1 + float(np.abs(readable).max()))
    return max(floor, one_ulp_reach(model, x, log_probabilities=model.include_top))


def one_ulp_reach(model, x: np.ndarray, log_probabilities: bool = False) -> float:
    """8x how far perturbing the input alone by one ulp moves the logits (or log-probabilities,
    or features): how far one more rounding per layer can carry (see ``roundoff_bound``)."""
    one_ulp = np.sign(np.random.default_rng(1).standard_normal(x.shape)).astype(np.float32)
    outputs = [model.forward(image, output="logits")
               for image in (x, x * (1 + np.finfo(np.float32).eps * one_ulp))]
    if log_probabilities:
        outputs = [log_softmax(output) for output in outputs]
    return 8 * float(np.abs(outputs[1] - outputs[0]).max())


def import_tensorflow():
    """TensorFlow, or a skip that says why (the test extra installs it; CI always has it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return pytest.importorskip(
        "tensorflow", reason="needs TensorFlow, the gold model: pip install -e '.[test]'"
    )


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


def set_keras_weights(keras_model, layers, params) -> None:
    """Copy our params into a Keras model, layer by layer, by Keras layer name."""
    for layer in layers:
        if layer.weights:
            keras_model.get_layer(layer.name).set_weights(
                [params[f"{layer.name}/{weight}"] for weight in layer.weights])


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


@functools.cache
def keras_mobilenet(alpha: float, resolution: int, arch: str = "v1", **options):
    """One Keras model per (alpha, resolution, family) per session: building is the slow part."""
    import keras

    build = {"v1": keras.applications.MobileNet, "v2": keras.applications.MobileNetV2,
             "v3-large": keras.applications.MobileNetV3Large,
             "v3-small": keras.applications.MobileNetV3Small}[arch]
    return build(input_shape=(resolution, resolution, 3), alpha=alpha, weights=None, **options)


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


@pytest.fixture(scope="session")
def int8_models(tf, request):
    """name -> (.tflite bytes from TFLite's converter, float test images), each converted at most
    once per session (models and calibration sets: tests/int8_cases.py)."""
    import int8_cases  # imports this module: loaded lazily

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


def preprocess_photo(path) -> np.ndarray:
    """A photo as V1/V2 take it: (224, 224, 3) in [-1, 1]."""
    import mobilenet_np as mnp

    return mnp.preprocess_input(mnp.load_image(path, 224))
