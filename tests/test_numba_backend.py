"""The numba backend: compiled loop cores equal their loop twins; whole networks equal Keras
and the numpy fused path.

Tolerances. A compiled core runs the same float32 operations in the same order as the
interpreted one (Numba without ``fastmath`` neither reorders sums nor fuses a multiply and
an add), so the two are compared bit for bit. Whole networks: the Keras rule of
``test_model_parity.py`` (probabilities as each family's parity test bounds them), and
``helpers.bounds.roundoff_bound`` against the numpy fused path, which sums in another order.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from helpers.bounds import log_softmax, parity_rtol, roundoff_bound, softmax_bound
from helpers.cases import CASES, ConvCase, conv_cases
from helpers.data import images
from helpers.gold import keras_mobilenet, set_keras_weights
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fused import CONFIGS

from mobilenet_np import MobileNet, MobileNetV2, MobileNetV3Large, MobileNetV3Small, reference
from mobilenet_np.cli import main
from mobilenet_np.files import save_npz
from mobilenet_np.imagenet import load_image, preprocess_input
from mobilenet_np.reference import ACTIVATION_CODES
from mobilenet_np.shapes import resolve_padding

pytestmark = pytest.mark.numerical  # .ci/run runs these with other BLAS kernels too

needs_numba = pytest.mark.skipif(importlib.util.find_spec("numba") is None,
                                 reason="needs Numba for the numba backend: pip install -e '.[jit]'")
ACTIVATION_NAMES = list(ACTIVATION_CODES)  # None, relu, relu6, hard_sigmoid, hard_swish


def compiled_kernels():
    from mobilenet_np.compiled import kernels

    return kernels()


def assert_compiled_equals_twin(core: str, *args, result: int = -1) -> np.ndarray:
    """Run a core interpreted (its loop twin) and compiled, each on its own copy of ``args``;
    assert the array it writes (``args[result]``) holds the same bits, every one written (an
    output starts as NaN). Returns the twin's."""
    twin = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    compiled = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    getattr(reference, core)(*twin)
    getattr(compiled_kernels(), core)(*compiled)
    assert not np.isnan(twin[result]).any()
    np.testing.assert_array_equal(compiled[result], twin[result])
    return twin[result]


def depthwise_arguments(case: ConvCase, activation: str | None) -> tuple:
    """A generated depthwise case as ``depthwise_loop``'s arguments, as the loop twin makes them."""
    kh, kw, channels, multiplier = case.kernel.shape
    stride = (case.stride, case.stride)
    pads = resolve_padding(case.padding, case.x.shape[1:3], (kh, kw), stride, "case")
    bias = np.zeros(channels * multiplier, np.float32) if case.bias is None else case.bias
    out = np.full(case.run(reference).shape, np.nan, np.float32)
    return (np.repeat(case.x, multiplier, axis=3), case.kernel.reshape(kh, kw, -1), bias, stride,
            (pads[0][0], pads[1][0]), ACTIVATION_CODES[activation], out)


@needs_numba
@settings(max_examples=CASES)
@given(conv_cases(depthwise=True), st.sampled_from(ACTIVATION_NAMES))
def test_compiled_depthwise_equals_its_loop_twin(case: ConvCase, activation) -> None:
    """Any kernel shape, stride 1/2, padding form and depth multiplier, every activation; and
    the numba ``Depthwise`` step, which makes these arguments itself, gives the same bits."""
    from mobilenet_np.compiled import Depthwise
    from mobilenet_np.layers import Layer
    from mobilenet_np.plan import Unit

    arguments = depthwise_arguments(case, activation)
    expected = assert_compiled_equals_twin("depthwise_loop", *arguments)
    layer = Layer("case", "depthwise_conv2d", case.x.shape[1:], expected.shape[1:],
                  kernel=case.kernel.shape[0], stride=case.stride, padding=case.padding)
    pads = resolve_padding(case.padding, case.x.shape[1:3], case.kernel.shape[:2],
                           (case.stride,) * 2, "case")
    step = Depthwise(Unit("depthwise", (layer,), kernel=case.kernel, bias=arguments[2],
                          stride=case.stride, pads=pads, activation=activation))
    np.testing.assert_array_equal(step(case.x), expected)
    if activation is None:  # the loop twin itself makes the same call
        np.testing.assert_array_equal(expected, case.run(reference))


@needs_numba
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_compiled_epilogue_equals_its_loop_twin_and_the_numpy_epilogue(activation) -> None:
    """bias + activation in place: bit for bit the loop twin, and the numpy fused path's
    ``out += bias; activate_inplace(out)`` (the same float32 operations in the same order)."""
    from mobilenet_np.fused import activate_inplace

    rng = np.random.default_rng(7)
    out = rng.uniform(-8, 8, (257, 19)).astype(np.float32)  # across every activation's kinks
    out[0, :5] = [-3, 3, 0, 6, -6]
    bias = rng.standard_normal(19).astype(np.float32)
    twin = assert_compiled_equals_twin("bias_activate_loop", out, bias, ACTIVATION_CODES[activation],
                                       result=0)
    np.testing.assert_array_equal(twin, activate_inplace(out + bias, activation))


@needs_numba
@pytest.mark.parametrize("seed", range(20))
def test_compiled_pooling_and_squeeze_excite_equal_their_loop_twins(seed) -> None:
    rng = np.random.default_rng(seed)
    n, h, w, c = rng.integers(1, 3), rng.integers(1, 8), rng.integers(1, 8), rng.integers(1, 40)
    hidden = int(rng.integers(1, 9))
    x = rng.uniform(-4, 4, (n, h, w, c)).astype(np.float32)
    for average in (True, False):
        assert_compiled_equals_twin("global_pool_loop", x, average,
                                    np.full((n, c), np.nan, np.float32))
    weights = [rng.normal(0, 1, shape).astype(np.float32)
               for shape in ((c, hidden), (hidden,), (hidden, c), (c,))]
    assert_compiled_equals_twin("squeeze_excite_loop", x, *weights,
                                np.full_like(x, np.nan))


def keras_logits(keras, arch: str, theirs, x: np.ndarray) -> np.ndarray:
    """A Keras model's logits (before its softmax), as each family's parity test reads them."""
    if arch == "v2":  # the Dense layer's input, times its weights
        dense = theirs.get_layer("predictions")
        pooled = np.asarray(keras.Model(theirs.input, dense.input)(x))
        return pooled @ dense.get_weights()[0] + dense.get_weights()[1]
    layer = "reshape_2" if arch == "v1" else "logits"
    return np.asarray(keras.Model(theirs.inputs, theirs.get_layer(layer).output)(x)).reshape(
        len(x), -1)


# (model class, arch, alpha, resolution, own options, seed): two per family, as the parity tests
PARITY = [(MobileNet, "v1", 0.25, 128, {}, 128), (MobileNet, "v1", 1.0, 224, {}, 224),
          (MobileNetV2, "v2", 0.35, 96, {}, 96), (MobileNetV2, "v2", 1.0, 224, {}, 224),
          (MobileNetV3Small, "v3-small", 1.0, 224, {"minimalistic": False}, 4),
          (MobileNetV3Large, "v3-large", 0.75, 224, {"minimalistic": True}, 4)]


@needs_numba
@pytest.mark.parametrize(("model", "arch", "alpha", "resolution", "options", "seed"), PARITY)
def test_numba_backend_matches_keras(tf, model, arch, alpha, resolution, options, seed) -> None:
    """The parity tests' rule (conftest ``parity_rtol`` x (1 + max |logit|), and what that
    allows through the softmax), on logits that really spread."""
    import keras

    ours = model(alpha=alpha, resolution=resolution, weights=None, seed=seed, backend="numba",
                 **options)
    theirs = keras_mobilenet(alpha, resolution, arch, **options)
    set_keras_weights(theirs, ours.layers, ours.params)
    x = images((resolution, resolution, 3), **({"low": 0.0, "high": 255.0}
                                               if ours.expects_pixels else {}))
    expected = keras_logits(keras, arch, theirs, x)
    scale, rtol = 1 + np.abs(expected).max(), parity_rtol(ours.layers)
    assert expected.std(axis=1).min() > 0.5
    assert np.abs(expected[0] - expected[1]).max() > 20 * rtol * scale
    logit_error = np.abs(ours.predict(x, output="logits") - expected).max()
    probabilities = np.asarray(theirs(x))
    prob_error = np.abs(ours.predict(x) - probabilities).max()
    print(f"numba {arch} {alpha}/{resolution}: max |logit error| {logit_error:.2e} (scale "
          f"{scale:.1f}), max |prob error| {prob_error:.2e}")
    assert logit_error <= rtol * scale
    assert prob_error <= softmax_bound(probabilities, rtol * scale)


@needs_numba
@pytest.mark.parametrize(("family", "config"), CONFIGS)
def test_numba_backend_equals_the_numpy_fused_path(family, config) -> None:
    """test_fused.py's configurations (every family, no top, depth multipliers, odd sizes),
    batch 3 in two lanes; the two backends sum in other orders, hence ``roundoff_bound``."""
    numpy_model = family(weights=None, seed=9, **config)
    numba_model = family(weights=None, seed=9, backend="numba", **config)
    x = numpy_model.random_input(3)
    expected = numpy_model.predict(x, batch_size=2, output="logits")
    got = numba_model.predict(x, batch_size=2, output="logits")
    assert got.shape == expected.shape
    if numpy_model.include_top:
        got, expected = log_softmax(got), log_softmax(expected)
    assert np.abs(got - expected).max() <= roundoff_bound(numpy_model, x)


def test_an_unknown_backend_is_one_clear_error(capsys) -> None:
    with pytest.raises(ValueError, match="backend must be one of 'numpy', 'numba', got 'tf'"):
        MobileNet(alpha=0.25, resolution=32, weights=None, backend="tf")
    # the command line refuses it while parsing, before any weights are looked for
    for argv in (["profile", "--backend", "tf", "--resolution", "32"],
                 ["classify", "photo.jpg", "--backend", "tf", "--alpha", "0.3"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: argument --backend: invalid choice: 'tf'"), err
        assert err.count("\n") == 1


def test_missing_numba_is_one_clear_error(monkeypatch, capsys) -> None:
    """Numba hidden from the import system, as on a default install without the jit extra."""
    from mobilenet_np import compiled

    monkeypatch.setitem(__import__("sys").modules, "numba", None)
    compiled.kernels.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install 'mobilenet-np\[jit\]'"):
            MobileNet(alpha=0.25, resolution=32, weights=None, backend="numba")
        assert main(["profile", "--backend", "numba", "--resolution", "32"]) == 2
        assert capsys.readouterr().err == ("error: backend 'numba' needs Numba: pip install "
                                           "'mobilenet-np[jit]'\n")
    finally:
        compiled.kernels.cache_clear()  # the next test compiles (from the disk cache) again


@needs_numba
def test_profile_and_classify_run_the_numba_backend(tmp_path, capsys) -> None:
    from PIL import Image

    args = ["profile", "--arch", "v3-small", "--alpha", "0.75", "--resolution", "64", "--batch",
            "2", "--repeats", "1", "--backend", "numba", "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(row["kind"] == "squeeze_excite" for row in rows)  # fused steps: --fused implied
    Image.new("RGB", (70, 50), (20, 200, 30)).save(tmp_path / "green.png")
    model = MobileNet(alpha=0.25, resolution=64, weights=None, seed=2)
    save_npz(model.params, tmp_path / "w.npz")
    results = {}
    for backend in ("numpy", "numba"):
        assert main(["classify", str(tmp_path / "green.png"), "--weights", str(tmp_path / "w.npz"),
                     "--resolution", "64", "--backend", backend, "--json", "--top", "3"]) == 0
        results[backend] = json.loads(capsys.readouterr().out)[0]["predictions"]
    x = preprocess_input(load_image(tmp_path / "green.png", 64))[None]
    bound = roundoff_bound(model, x)
    for ours, theirs in zip(results["numba"], results["numpy"], strict=True):
        assert ours["index"] == theirs["index"]
        assert abs(ours["probability"] - theirs["probability"]) <= bound
