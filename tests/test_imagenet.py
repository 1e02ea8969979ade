"""Loading images like Keras, preprocess_input, and the bundled ImageNet labels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mobilenet_np import decode_predictions, imagenet_classes, load_image, preprocess_input
from mobilenet_np.imagenet import top_k

RNG = np.random.default_rng(3)
RGB = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)


def save(tmp_path, name: str, image: Image.Image, **options):
    path = tmp_path / name
    image.save(path, **options)
    return path


@pytest.fixture
def image_files(tmp_path):
    """The same picture in many modes and formats."""
    base = Image.fromarray(RGB)
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.fromarray(RNG.integers(0, 256, (37, 53), dtype=np.uint8)))
    return {
        "rgb.png": save(tmp_path, "rgb.png", base),
        "rgb.jpg": save(tmp_path, "rgb.jpg", base, quality=90),
        "gray.png": save(tmp_path, "gray.png", base.convert("L")),
        "rgba.png": save(tmp_path, "rgba.png", rgba),
        "palette.png": save(tmp_path, "palette.png", base.convert("P")),
        "cmyk.jpg": save(tmp_path, "cmyk.jpg", base.convert("CMYK")),
        "bw.png": save(tmp_path, "bw.png", base.convert("1")),
    }


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("name", ["rgb.png", "rgb.jpg", "gray.png", "rgba.png", "palette.png",
                                  "cmyk.jpg", "bw.png"])
def test_load_image_equals_keras_load_img(tf, image_files, name, interpolation) -> None:
    import keras

    expected = keras.utils.img_to_array(keras.utils.load_img(
        image_files[name], target_size=(24, 40), interpolation=interpolation))
    ours = load_image(image_files[name], (24, 40), interpolation)
    assert ours.shape == (24, 40, 3) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, expected)


def test_load_image_keeps_pixels_when_size_matches(image_files) -> None:
    np.testing.assert_array_equal(load_image(image_files["rgb.png"], (37, 53)), RGB)


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path) -> None:
    ramp = np.linspace(0, 65535, 64 * 32).reshape(32, 64).astype(np.uint16)
    path = save(tmp_path, "deep.png", Image.fromarray(ramp))
    pixels = load_image(path, (32, 64))
    np.testing.assert_allclose(pixels[..., 0], np.round(ramp / 257), atol=0.5)
    assert pixels[..., 0].std() > 50  # a clip to 255 would leave a flat white image


def test_exif_orientation_is_opt_in(tmp_path) -> None:
    tall = Image.fromarray(RGB[:, :20])  # 37 high, 20 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    path = save(tmp_path, "phone.jpg", tall, exif=exif.tobytes(), quality=95)
    as_keras = load_image(path, (37, 20))
    upright = load_image(path, (20, 37), exif_orientation=True)
    assert as_keras.shape == (37, 20, 3) and upright.shape == (20, 37, 3)
    np.testing.assert_allclose(upright, np.rot90(as_keras, k=-1), atol=0)


def test_bad_images_raise_clear_errors(tmp_path, image_files, monkeypatch) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not an image file Pillow can read"):
        load_image(text)
    data = image_files["rgb.jpg"].read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="damaged or truncated image"):
        load_image(cut)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 37 x 53 = 1961 pixels
    with pytest.raises(ValueError, match="possible decompression bomb"):
        load_image(image_files["rgb.png"])
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "absent.png")
    with pytest.raises(ValueError, match="interpolation must be one of"):
        load_image(image_files["gray.png"], interpolation="cubic")


def test_preprocess_input_maps_0_255_to_minus1_1() -> None:
    x = preprocess_input(np.array([0, 127.5, 255], dtype=np.float64))
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, [-1, 0, 1])
    assert preprocess_input(np.array([0, 255], dtype=np.uint8)).tolist() == [-1, 1]


def test_preprocess_input_equals_keras(tf) -> None:
    import keras

    x = RNG.uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    expected = keras.applications.mobilenet.preprocess_input(x.copy())
    np.testing.assert_allclose(preprocess_input(x), expected, rtol=0, atol=1e-7)


def test_bundled_labels_are_the_standard_order() -> None:
    classes = imagenet_classes()
    assert len(classes) == 1000 and len({wnid for wnid, _ in classes}) == 1000
    assert classes[0] == ("n01440764", "tench")
    assert classes[457] == ("n02883205", "bow_tie")
    assert classes[652] == ("n03763968", "military_uniform")
    assert classes[999] == ("n15075141", "toilet_tissue")


def test_decode_predictions_like_keras() -> None:
    probs = np.zeros((2, 1000), np.float32)
    probs[0, [652, 457, 3]] = [0.5, 0.3, 0.2]
    probs[1, 999] = 1
    decoded = decode_predictions(probs, top=3)
    assert decoded[0] == [("n03763968", "military_uniform", 0.5),
                          ("n02883205", "bow_tie", pytest.approx(0.3)),
                          ("n01491361", "tiger_shark", pytest.approx(0.2))]
    assert decoded[1][0] == ("n15075141", "toilet_tissue", 1.0)
    with pytest.raises(ValueError, match=r"needs ImageNet scores \(N, 1000\)"):
        decode_predictions(probs[:, :10])
    with pytest.raises(ValueError, match="top must be in 1..1000"):
        top_k(probs, 0)
