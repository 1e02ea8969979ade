"""checks.py on its own: the input mistakes it names on real photos, and the weights it refuses.

The photos are matplotlib's sample pictures and seeded crops of them (``helpers/photos.py``),
one image at a time: a check that refused a correctly prepared photo, or passed a mistaken
one, fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.photos import crops, whole

import mobilenet_np as mnp
from mobilenet_np.checks import PIXELS, SCALED, check_input, check_weights, input_mistake
from mobilenet_np.errors import InputError, WeightsError
from mobilenet_np.registry import get_family

INT8_INPUT = (0.0078125 * (-128 + 1), 0.0078125 * (127 + 1))  # a .tflite input: scale 1/128, zp -1


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """(34, 96, 96, 3) pixels in [0, 255]: the two pictures whole and 32 seeded crops."""
    return np.concatenate([whole(96), crops(32, seed=5, size=96)])


MISTAKES = {  # (what the caller did to the pixels, the range the model takes, words expected)
    "raw pixels to a [-1, 1] model": (lambda p: p, SCALED, "like raw [0, 255] pixels"),
    "pixels / 255 to a [-1, 1] model": (lambda p: p / 255, SCALED, "like pixels / 255"),
    "preprocess_input twice": (lambda p: mnp.preprocess_input(mnp.preprocess_input(p)), SCALED,
                               "preprocess_input was applied twice"),
    "[-1, 1] to a pixel model": (mnp.preprocess_input, PIXELS, "like preprocess_input's"),
    "preprocess_input twice to a pixel model": (
        lambda p: mnp.preprocess_input(mnp.preprocess_input(p)), PIXELS, "takes pixels in"),
    "pixels / 255 to a pixel model": (lambda p: p / 255, PIXELS, "pass x * 255"),
    "raw pixels to an int8 file's range": (lambda p: p, INT8_INPUT, "like raw [0, 255] pixels"),
    "pixels / 255 to an int8 file's range": (lambda p: p / 255, INT8_INPUT, "pixels / 255"),
}


@pytest.mark.parametrize("name", MISTAKES)
def test_every_photo_with_the_mistake_is_refused_by_name(photos, name) -> None:
    prepare, takes, words = MISTAKES[name]
    for photo in photos:
        message = input_mistake(prepare(photo)[None], takes)
        assert message is not None and words in message, message
        assert "\n" not in message


@pytest.mark.parametrize("takes, prepare", [(SCALED, mnp.preprocess_input), (PIXELS, lambda p: p),
                                            (INT8_INPUT, mnp.preprocess_input)])
def test_every_correctly_prepared_photo_passes(photos, takes, prepare) -> None:
    for photo in photos:
        assert input_mistake(prepare(photo)[None], takes) is None
    assert input_mistake(prepare(photos), takes) is None


def test_flat_images_pass_their_own_range() -> None:
    """Black, white and grey images prepared rightly are not mistaken for a mistake."""
    for value in (0.0, 1.0, 127.0, 128.0, 254.0, 255.0):
        pixels = np.full((1, 8, 8, 3), value, np.float32)
        assert input_mistake(mnp.preprocess_input(pixels), SCALED) is None, value
        assert input_mistake(pixels, PIXELS) is None, value


def test_nan_and_inf_are_refused_even_without_the_range_check(photos) -> None:
    x = mnp.preprocess_input(photos[:2])
    x[1, 3, 4, 2], x[0, 0, 0, 0] = np.nan, np.inf
    with pytest.raises(InputError, match="x holds 2 NaN or infinite values"):
        check_input(x, SCALED, check_range=False)
    check_input(photos[:2] / 255, SCALED, check_range=False)  # the range check is off
    with pytest.raises(InputError, match=r"pixels / 255.*\(or check_range=False\)$"):
        check_input(photos[:2] / 255, SCALED)


@pytest.fixture(scope="module")
def v1():
    """V1 alpha 0.25's layer table and seeded random weights."""
    model = mnp.MobileNet(alpha=0.25, resolution=64, weights=None, seed=3)
    return model.layers, dict(model.params)


def test_valid_weights_pass(v1) -> None:
    layers, params = v1
    check_weights(params, layers, "w.npz")
    check_weights(params, None, "w.npz")


def test_real_weights_pass(pretrained_path) -> None:
    """The official Keras V1 0.25 file (variances down to ~4e-36, never negative) passes."""
    family = get_family("v1")
    layers = family.layers(alpha=0.25)
    check_weights(mnp.weights.load_weights(pretrained_path, layers, family), layers, "real")


def damaged(params: dict, key: str, index: int, value: float) -> dict:
    """A copy of params with ``key``'s value at ``index`` set; ``key`` "a|b" sets both."""
    out = dict(params)
    for one in key.split("|"):
        out[one] = out[one].copy()
        out[one].flat[index] = value
    return out


BAD_WEIGHTS = {  # (array(s), flat index, value, words expected)
    "negative variance": ("conv_dw_3_bn/moving_variance", 4, -0.5,
                          "conv_dw_3_bn/moving_variance holds 1 negative values (channel 4"),
    "variance negative within epsilon": ("conv_pw_5_bn/moving_variance", 0, -1e-4,
                                         "conv_pw_5_bn/moving_variance holds 1 negative"),
    "variance exactly -epsilon": ("conv1_bn/moving_variance", 2, -1e-3, "conv1_bn/moving_variance"),
    "gamma that folds past float32": ("conv_dw_2_bn/gamma", 1, 3e38,
                                      "conv_dw_2_bn would fold into"),
    "mean that shifts past float32": ("conv_pw_1_bn/moving_mean|conv_pw_1_bn/gamma", 0, 3e38,
                                      "conv_pw_1_bn would fold into 1 NaN or infinite values "
                                      "(its shift"),
    "kernel that folds past float32": ("conv_pw_2/kernel", 7, 3e38, "conv_pw_2_bn would fold"),
}


@pytest.mark.parametrize("name", BAD_WEIGHTS)
def test_invalid_weights_are_refused_naming_the_array(v1, name) -> None:
    key, index, value, words = BAD_WEIGHTS[name]
    layers, params = v1
    bad = damaged(params, key, index, value)
    assert all(np.isfinite(bad[one]).all() for one in key.split("|"))  # finite: passes a
    # finiteness check
    with pytest.raises(WeightsError, match=f"^w.npz: {words}".replace("(", r"\(")):
        check_weights(bad, layers, "w.npz")


def test_the_fold_is_what_would_give_nan(v1) -> None:
    """What check_weights refuses really gives NaN or inf in the fused model: not a guess."""
    layers, params = v1
    bad = damaged(params, "conv_dw_3_bn/moving_variance", 4, -0.5)
    model = mnp.MobileNet(alpha=0.25, resolution=64, weights=None, seed=3)
    model.params.update(bad)
    with np.errstate(all="ignore"):
        x = model.random_input(1)
        assert not np.isfinite(model.forward(x, check_range=False)).all()


def test_zero_channels_are_refused(v1) -> None:
    family = get_family("v1")
    thin = family.layers(alpha=0.01, resolution=64)
    with pytest.raises(WeightsError, match="layer conv1 would be 0 channels wide"):
        check_weights({}, thin, "w.npz")
    layers, params = v1
    empty = {**params, "conv1/kernel": np.zeros((3, 3, 3, 0), np.float32)}
    with pytest.raises(WeightsError, match=r"conv1/kernel has shape \(3, 3, 3, 0\), 0 values"):
        check_weights(empty, None, "w.npz")
