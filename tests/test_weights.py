"""Keras HDF5 files (both layouts) -> convert -> .npz -> load: same arrays, same outputs; and
every damaged or mismatched file gets a message that says what is wrong."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from helpers.data import write_legacy_h5
from helpers.gold import set_keras_weights

from mobilenet_np import MobileNet
from mobilenet_np.cli import main
from mobilenet_np.families.v1 import V1
from mobilenet_np.files import load_npz, save_npz
from mobilenet_np.layers import Layer
from mobilenet_np.random_init import random_weights
from mobilenet_np.weights import convert, read_weights_file

X = np.random.default_rng(1).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)


def small_model(**options) -> MobileNet:
    return MobileNet(alpha=0.25, resolution=128, weights=None, seed=11, **options)


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory):
    """A legacy-layout file written by h5py alone (no TensorFlow)."""
    path = tmp_path_factory.mktemp("w") / "mobilenet_2_5_128_tf.h5"
    model = small_model()
    write_legacy_h5(path, model.layers, model.params)
    return path


def assert_same_model(a: MobileNet, b: MobileNet) -> None:
    assert a.params.keys() == b.params.keys()
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key], err_msg=key)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_legacy_h5_convert_npz_round_trip(legacy_file, tmp_path) -> None:
    npz = tmp_path / "w.npz"
    assert main(["convert", str(legacy_file), str(npz)]) == 0
    original = small_model()
    for source in (legacy_file, npz):
        assert_same_model(original, MobileNet(alpha=0.25, resolution=128, weights=source))


@pytest.mark.parametrize("layout", ["tf_keras legacy .h5", "keras 3 .weights.h5"])
def test_real_keras_files_round_trip(tf, tmp_path, layout) -> None:
    """Files written by Keras itself: tf-keras writes the legacy layout, Keras 3 its own."""
    if layout.startswith("tf_keras"):
        keras = pytest.importorskip("tf_keras", reason="needs tf-keras to write legacy .h5")
        path = tmp_path / "model.h5"
    else:
        import keras
        path = tmp_path / "model.weights.h5"
    original = small_model()
    keras_model = keras.applications.MobileNet(input_shape=(128, 128, 3), alpha=0.25,
                                               weights=None)
    set_keras_weights(keras_model, original.layers, original.params)
    keras_model.save_weights(str(path))
    convert(path, tmp_path / "w.npz")
    for source in (path, tmp_path / "w.npz"):
        assert_same_model(original, MobileNet(alpha=0.25, resolution=128, weights=source))


def test_weights_read_once_build_several_models(legacy_file) -> None:
    stored = read_weights_file(legacy_file)
    assert_same_model(small_model(), MobileNet(alpha=0.25, resolution=128, weights=stored))
    headless = MobileNet(alpha=0.25, resolution=96, include_top=False, weights=stored)
    assert "conv_preds/kernel" not in headless.params
    # what was read remembers its file, so the message names it, not "the weights given"
    with pytest.raises(ValueError, match=rf"{legacy_file.name} holds MobileNet V1 alpha=0.25"):
        MobileNet(alpha=0.5, resolution=128, weights=stored)


def test_no_top_file_and_top_file_into_a_no_top_model(tmp_path) -> None:
    headless = small_model(include_top=False, pooling="avg")
    path = tmp_path / "no_top.h5"
    write_legacy_h5(path, headless.layers, headless.params)
    loaded = MobileNet(alpha=0.25, resolution=128, include_top=False, pooling="avg", weights=path)
    assert_same_model(headless, loaded)
    with pytest.raises(ValueError, match="holds MobileNet V1 alpha=0.25, depth_multiplier=1, "
                                         "with no top"):
        MobileNet(alpha=0.25, resolution=128, weights=path)
    full = tmp_path / "top.h5"
    write_legacy_h5(full, small_model().layers, small_model().params)
    backbone = MobileNet(alpha=0.25, resolution=128, include_top=False, weights=full)
    assert "conv_preds/kernel" not in backbone.params


def test_weights_for_another_alpha_say_what_the_file_holds(legacy_file) -> None:
    with pytest.raises(ValueError, match=r"holds MobileNet V1 alpha=0.25.*1000-class top"):
        MobileNet(alpha=1.0, resolution=128, weights=legacy_file)
    with pytest.raises(ValueError, match="conv_preds/kernel has shape"):
        MobileNet(alpha=0.25, resolution=128, classes=10, weights=legacy_file)


def test_missing_extra_and_misshapen_layers_are_named(tmp_path) -> None:
    model = small_model()
    params = dict(model.params)
    del params["conv_dw_5/depthwise_kernel"]
    params["conv_dw_6_bn/gamma"] = np.ones(7, np.float32)
    params["mystery/kernel"] = np.ones(3, np.float32)
    layers = [*model.layers, Layer("mystery", "conv2d", (3,), (3,), weights={"kernel": (3,)})]
    layers = [layer for layer in layers if layer.name != "conv_dw_5"]
    path = tmp_path / "bad.h5"
    write_legacy_h5(path, layers, params)
    with pytest.raises(ValueError) as error:
        MobileNet(alpha=0.25, resolution=128, weights=path)
    message = str(error.value)
    assert "missing layers ['conv_dw_5']" in message
    assert "unexpected layers ['mystery']" in message
    assert "conv_dw_6_bn/gamma has shape (7,), expected (64,)" in message


def test_truncated_and_non_hdf5_files(legacy_file, tmp_path) -> None:
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(legacy_file.read_bytes()[: legacy_file.stat().st_size // 2])
    text = tmp_path / "notes.h5"
    text.write_text("not weights")
    for path in (truncated, text):
        with pytest.raises(ValueError, match="not a readable HDF5 weights file"):
            MobileNet(alpha=0.25, resolution=128, weights=path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as file:
        file["data"] = np.ones(3)
    with pytest.raises(ValueError, match="not Keras weights"):
        read_weights_file(other)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        MobileNet(alpha=0.25, resolution=128, weights=tmp_path / "absent.h5")


def test_npz_with_pickled_objects_is_refused(tmp_path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, **{"conv1/kernel": np.array([{"x": 1}], dtype=object)})
    with pytest.raises(ValueError, match="pickled objects, refused"):
        load_npz(path)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 cut")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_npz(broken)


def test_failed_write_leaves_no_half_file(tmp_path, monkeypatch) -> None:
    def explode(file, **arrays):
        file.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", explode)
    with pytest.raises(KeyboardInterrupt):
        save_npz({"a/b": np.ones(2)}, tmp_path / "out.npz")
    assert list(tmp_path.iterdir()) == []


def test_random_weights_are_seeded_and_sane() -> None:
    layers = V1.layers(alpha=0.25, resolution=128)
    a, b, c = random_weights(layers, 0), random_weights(layers, 0), random_weights(layers, 1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1/kernel"], c["conv1/kernel"])
    assert all(v.dtype == np.float32 for v in a.values())
    assert min(a[k].min() for k in a if k.endswith("moving_variance")) >= 0.5
