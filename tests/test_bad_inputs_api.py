"""Bad input through the Python API: each case raises one error class with a message naming the
culprit (the command-line table is ``test_bad_inputs.py``). Also the inputs that used to give
a wrong answer quietly: deep images are scaled, not clipped; EXIF orientation is told."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers.data import write_legacy_h5
from PIL import Image

import mobilenet_np as mnp
from mobilenet_np import imagenet
from mobilenet_np.errors import InputError, WeightsError
from mobilenet_np.files import save_npz
from mobilenet_np.imagenet import load_image, read_bounded, read_image


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Images of every depth, odd paths, and weights that are finite but invalid."""
    folder = tmp_path_factory.mktemp("api")
    ramp = np.arange(12 * 16).reshape(12, 16)  # (H, W): every value distinct
    Image.fromarray((ramp * 340).astype(np.uint16)).save(folder / "gray16.png")
    Image.fromarray((ramp * 11_000_000).astype(np.int32)).save(folder / "gray32.tif")
    Image.fromarray((ramp - 5).astype(np.int32)).save(folder / "negative32.tif")
    Image.fromarray((ramp / ramp.max()).astype(np.float32)).save(folder / "unit.tif")
    Image.fromarray((ramp * 2.0).astype(np.float32)).save(folder / "float255.tif")
    pgm = b"P5\n16 12\n65535\n" + (ramp * 340).astype(">u2").tobytes()
    (folder / "gray16.pgm").write_bytes(pgm)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "good.png")
    os.symlink(folder / "loop", folder / "loop")
    os.symlink(folder / "gone.png", folder / "dangling.png")
    model = mnp.MobileNet(alpha=0.25, resolution=64, weights=None, seed=4)
    bad = dict(model.params)
    bad["conv_dw_4_bn/moving_variance"] = bad["conv_dw_4_bn/moving_variance"].copy()
    bad["conv_dw_4_bn/moving_variance"][2] = -0.25
    save_npz(bad, folder / "negative_variance.npz")
    write_legacy_h5(folder / "w.h5", model.layers, model.params)
    return folder


@dataclass
class Case:
    """Call ``run(folder)``; expect ``error`` whose message holds ``message``."""

    run: Callable[[Path], object]
    error: type[Exception]
    message: str
    marks: tuple = ()


def pixels(n: int = 2, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype(np.float32)


def v1(**options) -> mnp.Network:
    return mnp.MobileNet(alpha=0.25, resolution=64, weights=None, **options)


def v3() -> mnp.Network:
    return mnp.MobileNetV3Small(resolution=64, weights=None)


def imagenet_normalised(x: np.ndarray) -> np.ndarray:
    """timm's (and torchvision's) preprocessing: pixels / 255, minus the mean, over the std."""
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return ((x / 255 - mean) / std).astype(np.float32)


def with_nan(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[0, 1, 2, 0] = np.nan
    return x


CASES = {
    "size past the pixel budget": Case(lambda f: load_image(f / "good.png", 20000), InputError,
                                       "size 20000x20000 is 400,000,000 pixels, over the "
                                       "89,478,485-pixel budget"),
    "size zero": Case(lambda f: load_image(f / "good.png", 0), InputError,
                      "size must be a positive int or (height, width), got 0"),
    "size a bool": Case(lambda f: load_image(f / "good.png", True), InputError, "got True"),
    "size a float": Case(lambda f: load_image(f / "good.png", 8.0), InputError, "got 8.0"),
    "size of three": Case(lambda f: load_image(f / "good.png", (8, 8, 3)), InputError,
                          "got (8, 8, 3)"),
    "interpolation unknown": Case(lambda f: load_image(f / "good.png", 8, "lanczos"), InputError,
                                  "interpolation must be one of ['bicubic', 'bilinear', "
                                  "'nearest']"),
    "crop_pct over 1": Case(lambda f: load_image(f / "good.png", 8, "bicubic", crop_pct=1.5),
                            InputError, "crop_pct must be in (0, 1], got 1.5"),
    "image bytes, not a file": Case(lambda f: load_image((f / "good.png").read_bytes()),
                                    InputError, "got bytes: wrap an image's bytes in io.BytesIO"),
    "a text-mode handle": Case(lambda f: load_image(open(f / "good.png")), InputError,  # noqa: SIM115
                               "a file opened in binary mode ('rb'), got TextIOWrapper"),
    "a symlink loop": Case(lambda f: load_image(f / "loop"), InputError,
                           "loop: a loop of symbolic links"),
    "a dangling link": Case(lambda f: load_image(f / "dangling.png"), FileNotFoundError,
                            "gone.png, which does not exist"),
    "a name too long": Case(lambda f: load_image(f / ("a" * 300 + ".png")), InputError,
                            ".png: name too long for the file system"),
    "a NUL in the path": Case(lambda f: load_image(f"{f}/a\0b.png"), InputError,
                              "a\\0b.png: a path cannot hold a NUL byte"),
    "an empty path": Case(lambda f: load_image(""), FileNotFoundError,
                          "'': no such file (an empty argument)"),
    "a URL for a path": Case(lambda f: load_image("https://example.com/cat.jpg"),
                             FileNotFoundError, "cat.jpg: no such file (images are read from "
                             "files: download it first)"),
    "a quoted tilde": Case(lambda f: load_image("~/cat.jpg"), FileNotFoundError,
                           "~/cat.jpg: no such file (a quoted ~ is not your home folder"),
    "a path through a file": Case(lambda f: load_image(f / "good.png" / "x.png"), InputError,
                                  "a part of the path is a file, not a folder"),
    "a device": Case(lambda f: load_image("/dev/zero"), InputError,
                     "/dev/zero is not a regular file"),
    "floats outside [0, 1]": Case(lambda f: load_image(f / "float255.tif", 8), InputError,
                                  "float255.tif: floating-point pixels span [0, 382], not [0, 1]"),
    "negative 32-bit pixels": Case(lambda f: load_image(f / "negative32.tif", 8), InputError,
                                   "negative32.tif: signed 32-bit pixels, some negative (-5)"),
    "stdin past the cap": Case(lambda f: read_bounded(io.BytesIO(b"x" * 11), "-"), InputError,
                               "-: more than 10 bytes, the most one image may hold"),
    "a file past the cap": Case(lambda f: load_image(f / "gray16.pgm"), InputError,
                                "gray16.pgm: 399 bytes, over the 10 an image file may hold"),
    "NaN scores to decode": Case(lambda f: mnp.decode_predictions(np.full((1, 1000), np.nan)),
                                 InputError, "probs holds 1000 NaN or infinite values"),
    "top past the classes": Case(lambda f: mnp.decode_predictions(np.ones((1, 1000)), 1001),
                                 InputError, "top must be in 1..1000, got 1001"),
    # Through the models: checks.py in Network.check_input, weight loading and the builder.
    "pixels / 255 to V1": Case(lambda f: v1().predict(pixels() / 255), InputError,
                               "like pixels / 255 in [0, 1], but this model takes [-1, 1]"),
    "preprocess_input twice to V1": Case(
        lambda f: v1().predict(mnp.preprocess_input(mnp.preprocess_input(pixels()))),
        InputError, "preprocess_input was applied twice"),
    "raw pixels to V1": Case(lambda f: v1().predict(pixels()), ValueError,
                             "scale pixels with preprocess_input"),
    "raw pixels to V1, by class": Case(lambda f: v1().predict(pixels()), InputError,
                                       "like raw [0, 255] pixels"),
    "pixels / 255 to V3": Case(lambda f: v3().predict(pixels() / 255), InputError,
                               "this model takes pixels in [0, 255]: pass x * 255"),
    "[-1, 1] to V3": Case(lambda f: v3().predict(mnp.preprocess_input(pixels())), ValueError,
                          "takes pixels in [0, 255]"),
    "mean/std-normalised to V3": Case(lambda f: v3().predict(imagenet_normalised(pixels())),
                                      InputError, "like ImageNet mean/std normalisation"),
    "mean/std-normalised to V4": Case(
        lambda f: mnp.Network(mnp.get_family("v4-conv-small"), weights=None,
                              resolution=64).predict(imagenet_normalised(pixels())),
        InputError, "normalises them itself"),
    "NaN to V1 unchecked": Case(
        lambda f: v1().predict(with_nan(mnp.preprocess_input(pixels())), check_range=False),
        ValueError, "1 NaN or infinite"),
    "NaN to V1, by class": Case(
        lambda f: v1().predict(with_nan(mnp.preprocess_input(pixels())), check_range=False),
        InputError, "x holds 1 NaN or infinite values"),
    "pixels / 255 to quantize": Case(lambda f: mnp.quantize(v1(), pixels() / 255), InputError,
                                     "like pixels / 255"),
    "negative variance loaded": Case(lambda f: mnp.load(f / "negative_variance.npz"),
                                     WeightsError, "conv_dw_4_bn/moving_variance holds 1 negative"),
    "alpha with 0-channel layers": Case(lambda f: mnp.MobileNet(alpha=0.001, resolution=64, weights=None),
                                        InputError, "0 channels"),
    "the cache is a file": Case(lambda f: mnp.download.cache_dir(), InputError,
                                "good.png ($MOBILENET_NP_HOME) is a file, not a folder"),
}


@pytest.mark.parametrize("name", [pytest.param(name, marks=case.marks)
                                  for name, case in CASES.items()])
def test_bad_input_raises_one_clear_error(files, name, monkeypatch) -> None:
    monkeypatch.setattr(imagenet, "MAX_FILE_BYTES", 10 if "cap" in name else
                        imagenet.MAX_FILE_BYTES)
    monkeypatch.setenv("MOBILENET_NP_HOME", str(files / "good.png"))
    case = CASES[name]
    with pytest.raises(case.error) as caught:
        case.run(files)
    message = str(caught.value)
    assert case.message in message and "\n" not in message, message


def test_the_api_table_has_thirty_cases() -> None:
    assert len(CASES) >= 30


DEEP = {  # file -> its values as 8-bit, by the format's own range (computed here, not by us)
    "gray16.png": lambda ramp: ramp * 340 / 65535 * 255,
    "gray16.pgm": lambda ramp: ramp * 340 / 65535 * 255,
    "gray32.tif": lambda ramp: ramp * 11_000_000 / (2 ** 31 - 1) * 255,  # signed 32-bit
    "unit.tif": lambda ramp: ramp / ramp.max() * 255,
}


@pytest.mark.parametrize("name", DEEP)
def test_deep_images_are_scaled_not_clipped(files, name) -> None:
    ramp = np.arange(12 * 16).reshape(12, 16).astype(np.float64)
    got = load_image(files / name, (12, 16))  # (12, 16, 3), no resize
    expected = np.round(DEEP[name](ramp))
    assert got.min() < 64 and len(np.unique(got)) > 50  # not clipped to white
    assert np.array_equal(got, np.repeat(expected[..., None], 3, axis=2).astype(np.float32))


@pytest.mark.parametrize("orientation, turn", [(1, 0), (3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_told_and_applied(tmp_path, orientation, turn) -> None:
    """EXIF 2.32, tag 0x0112: 3 is upside down, 6 needs 90 degrees clockwise, 8 counter-clockwise
    (np.rot90 turns counter-clockwise for k > 0)."""
    stored = np.random.default_rng(1).integers(0, 256, (20, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "photo.png", exif=exif)
    upright = np.rot90(stored, turn)
    as_stored, told = read_image(tmp_path / "photo.png", stored.shape[:2])
    assert told == orientation and np.array_equal(as_stored, stored)
    turned, told = read_image(tmp_path / "photo.png", upright.shape[:2], exif_orientation=True)
    assert told == orientation and np.array_equal(turned, upright)


def test_damaged_exif_still_loads(files, tmp_path) -> None:
    data = (files / "good.png").read_bytes()
    chunk = b"eXIf"
    body = b"II*\0garbage"
    crc = __import__("zlib").crc32(chunk + body).to_bytes(4, "big")
    png = data[:33] + len(body).to_bytes(4, "big") + chunk + body + crc + data[33:]
    (tmp_path / "odd.png").write_bytes(png)
    assert read_image(tmp_path / "odd.png", 8)[1] == 1


def test_stdin_under_the_cap_is_read_whole(files) -> None:
    data = (files / "good.png").read_bytes()
    stream = read_bounded(io.BytesIO(data), "-")
    assert stream.name == "-" and load_image(stream, 8).shape == (8, 8, 3)


def test_tilde_in_the_cache_variable_is_expanded(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MOBILENET_NP_HOME", "~/weights")
    assert mnp.download.cache_dir() == tmp_path / "weights"


SIGNALLED = r"""
import os, signal, sys
import numpy as np
from mobilenet_np.cli import main
signum, source, destination = getattr(signal, sys.argv[1]), sys.argv[2], sys.argv[3]
real = np.savez
def savez(*args, **kwargs):
    os.kill(os.getpid(), signum)  # arrives while the .part file exists
    real(*args, **kwargs)
np.savez = savez
sys.exit(main(["convert", source, destination]))
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_clean_up_like_ctrl_c(files, tmp_path, signame) -> None:
    destination = tmp_path / "w.npz"
    done = subprocess.run([sys.executable, "-c", SIGNALLED, signame, str(files / "w.h5"),
                           str(destination)], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr) == (130, "interrupted\n")
    assert list(tmp_path.iterdir()) == []  # no .part file left behind


def test_a_cached_file_that_is_damaged_is_downloaded_again(files, tmp_path, monkeypatch,
                                                           caplog) -> None:
    from mobilenet_np import download
    from mobilenet_np.families.v1 import V1

    config = V1.config(alpha=0.25, resolution=128)
    cache = tmp_path / "cache"
    cache.mkdir()
    cached = cache / download.official_file_name(V1, config)
    cached.write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    good = tmp_path / "good.h5"
    monkeypatch.setenv("MOBILENET_NP_HOME", str(cache))
    monkeypatch.setenv("HOME", str(tmp_path))

    def fetch(url, destination, check):
        destination.write_bytes(good.read_bytes())
        return destination

    from helpers.data import write_legacy_h5

    model = mnp.MobileNet(alpha=0.25, resolution=128, weights=None, seed=2)
    write_legacy_h5(good, model.layers, model.params)
    monkeypatch.setattr(download, "download", fetch)
    with caplog.at_level(logging.WARNING, "mobilenet_np.download"):
        assert download.official_weights(V1, config, verify=True) == cached
    assert cached.read_bytes() == good.read_bytes()
    assert f"the cached {cached} is damaged" in caplog.text
    assert "downloading it again" in caplog.text
    caplog.clear()
    assert download.official_weights(V1, config, verify=True) == cached  # now fine: kept
    assert caplog.text == ""


def test_a_full_disk_names_the_device_and_the_file(tmp_path, monkeypatch) -> None:
    import errno

    from mobilenet_np import download

    class Full(io.BytesIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    class Response(io.BytesIO):
        headers: dict = {}

    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout: Response(b"x" * 100))
    monkeypatch.setattr(download, "open", lambda path, mode: Full(), raising=False)
    destination = tmp_path / "w.h5"
    with pytest.raises(OSError, match=r"^no space left on (\S+) while writing ") as caught:
        download.download("http://example.invalid/w.h5", destination, lambda path: None)
    device = Path(str(caught.value).split()[4])
    assert f"while writing {destination}: free some space" in str(caught.value)
    assert device == Path("/") or device in destination.parents
    assert list(tmp_path.iterdir()) == []
