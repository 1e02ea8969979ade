"""Class activation maps (``cam.py``): the V1/V2 map's mean plus the bias is the model's own logit,
V3's head gradient equals TensorFlow's autograd through Keras's head, the overlay and ``--cam``."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.bounds import rounding_bound
from helpers.gold import keras_mobilenet, set_keras_weights
from PIL import Image

import mobilenet_np as mnp
from mobilenet_np.cam import class_activation_maps, head_gradient, overlay, split_head, write_overlay
from mobilenet_np.cli import main
from mobilenet_np.files import save_npz

CLASSES = [457, 652, 0, 999]  # bow tie, military uniform, the first and the last


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """The two sample photos whole, as pixels in [0, 255]: (2, 224, 224, 3)."""
    pytest.importorskip("matplotlib", reason="the sample photos ship with matplotlib")
    from helpers.photos import whole

    return whole()


def model_input(model: mnp.Network, pixels: np.ndarray) -> np.ndarray:
    return pixels if model.expects_pixels else mnp.preprocess_input(pixels)


def assert_cam_is_the_logit(model: mnp.Network, x: np.ndarray) -> None:
    """For every class asked: mean(CAM) + bias == the logit forward computes, to round-off.

    forward pools then multiplies (C products after an H*W mean); the map multiplies then
    averages: the same C*H*W products summed in another order, so each side is within
    Higham's bound of the exact value, with terms = C + H*W + 1 (the bias)."""
    features_layer, (classifier,) = split_head(model)
    kernel = model.layer_weights(classifier)["kernel"].reshape(-1, 1000)  # (C, 1000)
    bias = model.layer_weights(classifier)["bias"]
    _, height, width, channels = (len(x), *features_layer.output_shape)
    for c in CLASSES:
        maps, _, logits = class_activation_maps(model, x, np.full(len(x), c))
        assert np.ptp(logits) > 1, "degenerate weights: logits that barely vary prove nothing"
        features = model.forward(x, output="logits", capture=True)[1][features_layer.name]
        abs_sum = np.abs(features).astype(np.float64) @ np.abs(kernel[:, c]).astype(np.float64)
        bound = rounding_bound(abs_sum.mean(axis=(1, 2)) + abs(bias[c]),
                               channels + height * width + 1)
        mean_plus_bias = maps.astype(np.float64).mean(axis=(1, 2)) + bias[c]
        assert np.all(np.abs(mean_plus_bias - logits[:, c]) <= bound), (c, mean_plus_bias,
                                                                          logits[:, c], bound)


@pytest.mark.parametrize("build", [lambda: mnp.MobileNet(alpha=0.25, weights=None, seed=3),
                                   lambda: mnp.MobileNetV2(alpha=0.35, weights=None, seed=3)],
                         ids=["v1", "v2"])
def test_cam_mean_plus_bias_is_the_logit(build, photos) -> None:
    assert_cam_is_the_logit(build(), model_input(build(), photos))


def test_cam_is_the_logit_with_real_weights(pretrained_path, photos) -> None:
    model = mnp.MobileNet(alpha=0.25, weights=pretrained_path)
    assert_cam_is_the_logit(model, model_input(model, photos))


def test_real_bow_tie_map_peaks_on_the_tie(pretrained_path, photos) -> None:
    """Grace Hopper's bow tie sits below her chin, in the middle: the 7x7 map's peak must be
    there (rows 3-5, columns 2-4), not on her face or the flag."""
    model = mnp.MobileNet(alpha=0.25, weights=pretrained_path)
    maps, classes, _ = class_activation_maps(model, model_input(model, photos[:1]))
    assert classes[0] == 457  # bow_tie
    row, column = np.unravel_index(np.argmax(maps[0]), maps[0].shape)
    assert 3 <= row <= 5 and 2 <= column <= 4, (row, column)


def test_linear_head_gradient_is_the_classifier_column() -> None:
    model = mnp.MobileNet(alpha=0.25, resolution=128, weights=None)
    _, (classifier,) = split_head(model)
    kernel = model.layer_weights(classifier)["kernel"].reshape(-1, 1000)
    pooled = np.random.default_rng(0).uniform(0, 6, (3, kernel.shape[0]))
    gradient = head_gradient(model, pooled, np.array(CLASSES[:3]))
    np.testing.assert_array_equal(gradient, kernel[:, CLASSES[:3]].T)


@pytest.mark.parametrize("arch, build", [("v3-small", mnp.MobileNetV3Small),
                                         ("v3-large", mnp.MobileNetV3Large)])
def test_v3_head_gradient_equals_tensorflow_autograd(tf, arch, build, photos) -> None:
    """Keras's own head layers (1x1 conv, hard-swish, dropout, 1x1 conv, flatten) on our pooled
    vector, differentiated by tf.GradientTape, against the chain rule written out by hand.

    Both are W2 @ (slope * W3[:, c]) summed over the 1x1 conv's K outputs, each side in its own
    order and precision (TF in float32): within Higham's bound for K terms of
    |W2| @ (1.5 |W3[:, c]|), the bound's factor 2 covering both."""
    model = build(weights=None, seed=5)
    keras_model = keras_mobilenet(1.0, 224, arch)
    set_keras_weights(keras_model, model.layers, model.params)
    features_layer, _ = split_head(model)
    features = model.forward(photos, output="logits", capture=True)[1][features_layer.name]
    pooled = features.mean(axis=(1, 2))  # (N, C)
    pool_at = max(i for i, layer in enumerate(keras_model.layers)  # the last: SE blocks pool too
                  if type(layer).__name__ == "GlobalAveragePooling2D")
    head = keras_model.layers[pool_at + 1:-1]  # up to the logits, without the softmax
    assert head[-2].name == "logits"
    classes = np.array([457, 999])
    variable = tf.Variable(pooled[:, None, None, :])  # (N, 1, 1, C), as Keras pools with keepdims
    with tf.GradientTape() as tape:
        h = variable
        for layer in head:
            h = layer(h, training=False)
        chosen = tf.gather(h, classes, axis=1, batch_dims=1)
        logits = h.numpy()
    expected = tape.gradient(chosen, variable).numpy().reshape(pooled.shape)
    assert np.ptp(logits) > 1, "degenerate weights: logits that barely vary prove nothing"
    gradient = head_gradient(model, pooled, classes)
    squeeze = np.abs(model.params["conv_2/kernel"]).reshape(pooled.shape[1], -1)  # (C, K)
    top = np.abs(model.params["logits/kernel"]).reshape(squeeze.shape[1], -1)[:, classes].T
    abs_sum = (1.5 * top) @ squeeze.T  # (N, C); |hard-swish'| <= 1.5 (its slope at 3-)
    assert np.all(np.abs(gradient - expected) <= rounding_bound(abs_sum, squeeze.shape[1]))


def test_v4_head_gradient_equals_central_differences() -> None:
    """MobileNetV4's head (1x1 conv, batch norm with epsilon 1e-5, ReLU, dense) is piecewise
    linear: a float64 central difference of it, written here from the stored weights, equals the
    gradient exactly up to float64 round-off (about 1e-16 / eps relative), away from ReLU's kink."""
    model = mnp.Network(mnp.get_family("v4-conv-small"), weights=None, seed=6)
    features_layer, head = split_head(model)
    assert [layer.kind for layer in head] == ["pointwise_conv2d", "batch_norm", "relu", "flatten",
                                              "dense"]
    w = {layer.kind: model.layer_weights(layer) for layer in head}
    bn = w["batch_norm"]
    scale = bn["gamma"] / np.sqrt(bn["moving_variance"].astype(np.float64) + 1e-5)

    def logits(pooled):  # (N, C) -> (N, K), float64
        u = pooled @ w["pointwise_conv2d"]["kernel"].reshape(pooled.shape[1], -1)
        u = (u - bn["moving_mean"]) * scale + bn["beta"]
        return np.maximum(u, 0) @ w["dense"]["kernel"] + w["dense"]["bias"]

    features = model.forward(model.random_input(2, seed=1), output="logits",
                             capture=True)[1][features_layer.name]
    pooled = features.mean(axis=(1, 2)).astype(np.float64)
    assert np.ptp(logits(pooled)) > 1, "degenerate weights: logits that barely vary prove nothing"
    classes, eps = np.array([3, 998]), 1e-6
    gradient = head_gradient(model, pooled, classes)
    for d in np.eye(pooled.shape[1])[:: pooled.shape[1] // 16]:  # 16 input directions
        step = eps * np.tile(d, (2, 1))
        numeric = (logits(pooled + step) - logits(pooled - step))[[0, 1], classes] / (2 * eps)
        np.testing.assert_allclose(gradient @ d, numeric, rtol=1e-6,
                                   atol=1e-6 * np.abs(gradient).max())


def test_overlay_keeps_the_photo_where_the_map_is_not_positive() -> None:
    image = np.random.default_rng(0).uniform(0, 255, (64, 48, 3)).astype(np.float32)
    cam = -np.ones((7, 7), np.float32)
    np.testing.assert_array_equal(overlay(image, cam), np.rint(image).astype(np.uint8))
    cam[3, 3] = 5.0  # one hot cell: the centre turns red/yellow, the corners stay the photo
    drawn = overlay(image, cam).astype(int)
    assert drawn[32, 24, 0] > image[32, 24, 0] or drawn[32, 24, 0] == 255
    np.testing.assert_array_equal(drawn[0, 0], np.rint(image[0, 0]))


def test_write_overlay_writes_a_png_atomically(tmp_path) -> None:
    image = np.full((40, 30, 3), 128, np.float32)
    cam = np.arange(49, dtype=np.float32).reshape(7, 7)
    write_overlay(tmp_path / "out.png", image, cam)
    with Image.open(tmp_path / "out.png") as written:
        assert (written.format, written.size, written.mode) == ("PNG", (30, 40), "RGB")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temporary left
    with pytest.raises(mnp.InputError, match=r"\*\.png"):
        write_overlay(tmp_path / "out.jpg", image, cam)
    with pytest.raises(mnp.InputError, match="NaN"):
        write_overlay(tmp_path / "nan.png", image, np.full((7, 7), np.nan, np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_a_model_without_its_classifier_is_refused() -> None:
    model = mnp.MobileNet(alpha=0.25, resolution=128, weights=None, include_top=False)
    with pytest.raises(mnp.UnsupportedError, match="include_top=True"):
        class_activation_maps(model, model.random_input(1))


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    """Random V1 0.25/128 weights as .npz, and a photo-to-be."""
    folder = tmp_path_factory.mktemp("cam_cli")
    model = mnp.MobileNet(alpha=0.25, resolution=128, weights=None, seed=4)
    save_npz(model.params, folder / "w.npz")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(folder / "a.png")
    return folder, model


def test_classify_cam_writes_the_overlay_of_the_printed_class(cli_files, capsys) -> None:
    folder, model = cli_files
    out = folder / "where.png"
    code = main(["classify", str(folder / "a.png"), "--weights", str(folder / "w.npz"),
                 "--resolution", "128", "--top", "1", "--cam", str(out)])
    printed = capsys.readouterr()
    assert code == 0
    label = printed.out.splitlines()[1].split()[1]
    assert printed.err.strip() == f"wrote {out}: where the model looks for {label}"
    pixels = mnp.load_image(folder / "a.png", 128)
    maps, _, _ = class_activation_maps(model, mnp.preprocess_input(pixels)[None])
    with Image.open(out) as written:
        np.testing.assert_array_equal(np.asarray(written), overlay(pixels, maps[0]))


@pytest.mark.parametrize("images, arguments, message", [
    (1, ["--tflite", "model.tflite"], "--cam needs a float model"),
    (2, [], "--cam draws one image"),
    (1, ["--cam", "where.jpg"], "where.jpg: the overlay is written as PNG"),
])
def test_classify_cam_refusals_are_one_line(cli_files, capsys, images, arguments, message) -> None:
    folder, _ = cli_files
    code = main(["classify", *[str(folder / "a.png")] * images, "--cam", str(folder / "never.png"),
                 *arguments])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message.split(":")[0] in err, err
    assert not (folder / "never.png").exists()
