"""Fuzzing the readers of untrusted files: random bytes, and real files with one byte flipped or
cut short. Whatever comes in, the only way out is the result or a ValueError with a message."""

from __future__ import annotations

import functools
import io
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers.data import write_legacy_h5
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import mobilenet_np as mnp
from mobilenet_np.files import save_npz
from mobilenet_np.weights import read_weights_file

EXAMPLES = 60  # per test; seeded (conftest), so CI and a laptop try the same files


@functools.cache
def originals() -> dict[str, bytes]:
    """Small valid files of every kind the readers take (a function, not a fixture, so that
    hypothesis does not print megabytes of them with every example)."""
    folder = Path(tempfile.mkdtemp())
    model = mnp.MobileNet(alpha=0.25, resolution=32, weights=None)
    write_legacy_h5(folder / "w.h5", model.layers, model.params)
    save_npz(model.params, folder / "w.npz")
    keras = io.BytesIO()
    with zipfile.ZipFile(keras, "w") as archive:
        archive.writestr("config.json", '{"config": {"name": "m"}}')
        archive.write(folder / "w.h5", "model.weights.h5")
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    images = {}
    for name, options in (("png", {}), ("jpeg", {"quality": 80}), ("gif", {}), ("bmp", {}),
                          ("tiff", {}), ("webp", {})):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=name.upper(), **options)
        images[f"image.{name}"] = buffer.getvalue()
    files = {"w.h5": (folder / "w.h5").read_bytes(), "w.npz": (folder / "w.npz").read_bytes(),
             "w.keras": keras.getvalue(), **images}
    shutil.rmtree(folder)
    return files


def damaged(data: bytes, flip: int, value: int, cut: float) -> bytes:
    """``data`` with the byte at ``flip`` (a fraction of its length) replaced, then cut short."""
    data = bytearray(data)
    data[int(flip * (len(data) - 1))] = value
    return bytes(data[:max(1, int(cut * len(data)))])


def expect_clean(read, path) -> None:
    """The read works, or fails with a ValueError (or FileNotFoundError) that has a message."""
    try:
        read(path)
    except (ValueError, FileNotFoundError) as error:
        assert str(error).strip(), "an error without a message"


CUT = st.one_of(st.just(1.0), st.floats(0.0, 1.0))
DAMAGE = (st.floats(0.0, 1.0), st.integers(0, 255), CUT)
SETTINGS = settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("name", ["w.h5", "w.npz", "w.keras"])
@SETTINGS
@given(*DAMAGE)
def test_weights_readers_survive_damage(tmp_path, name, flip, value, cut) -> None:
    path = tmp_path / name
    path.write_bytes(damaged(originals()[name], flip, value, cut))
    expect_clean(read_weights_file, path)


@pytest.mark.parametrize("suffix", [".h5", ".npz", ".keras", ".weights.h5"])
@SETTINGS
@given(st.binary(max_size=2048))
def test_weights_readers_survive_random_bytes(tmp_path, suffix, data) -> None:
    path = tmp_path / f"w{suffix}"
    path.write_bytes(data)
    expect_clean(read_weights_file, path)


@pytest.mark.parametrize("name", ["image.png", "image.jpeg", "image.gif", "image.bmp",
                                  "image.tiff", "image.webp"])
@SETTINGS
@given(*DAMAGE)
def test_image_loader_survives_damage(tmp_path, name, flip, value, cut) -> None:
    path = tmp_path / name
    path.write_bytes(damaged(originals()[name], flip, value, cut))
    expect_clean(lambda p: mnp.load_image(p, 16), path)


@SETTINGS
@given(st.binary(max_size=4096))
def test_image_loader_survives_random_bytes(tmp_path, data) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(data)
    expect_clean(lambda p: mnp.load_image(p, 16), path)
