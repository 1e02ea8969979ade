"""Crafted weight files: a file must never make the reader open or follow anything else, nor
unpack without bound; each is refused with one clear line.

Links and external data point at a FIFO: opening a FIFO for reading blocks until a writer
comes, so a reader that followed one would hang in ``open``. ``refused_without_opening`` runs
the reader in a subprocess (a thread would hang the session: h5py holds one global lock) and
fails the test if it has not answered in time.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers.data import write_legacy_h5

import mobilenet_np as mnp
from mobilenet_np import keras_files

PACKAGE_ROOT = Path(mnp.__file__).resolve().parents[1]  # the package under test, for subprocesses
# The places the reader visits, in each layout.
V1_LEGACY = {"layer group": "conv1", "dataset": "conv1/conv1/kernel:0"}
KERAS3 = {"layers group": "layers", "layer group": "layers/conv2d",
          "vars group": "layers/conv2d/vars", "dataset": "layers/conv2d/vars/0"}


@pytest.fixture
def fifo(tmp_path) -> Path:
    """A file no reader can open without blocking (until a writer comes)."""
    path = tmp_path / "other_file"
    os.mkfifo(path)
    return path


def legacy_file(path: Path) -> Path:
    """A valid legacy-layout file (V1 0.25, random weights), written with h5py."""
    model = mnp.MobileNet(alpha=0.25, resolution=32, weights=None, seed=0)
    write_legacy_h5(path, model.layers, model.params)
    return path


def keras3_file(path: Path) -> Path:
    """The start of a Keras 3 ``.weights.h5``: ``layers/conv2d/vars/0``, enough to be read."""
    with h5py.File(path, "w") as file:
        file["layers/conv2d/vars/0"] = np.ones((3, 3, 3, 8), np.float32)
    return path


@contextlib.contextmanager
def without(path: Path, node: str) -> Iterator[h5py.File]:
    """The file open for writing, ``node`` deleted: the test puts something else there."""
    with h5py.File(path, "r+") as file:
        del file[node]
        yield file


def refusal(path: Path) -> str:
    """The one-line error loading ``path`` raises."""
    with pytest.raises(ValueError) as error:
        mnp.load(path)
    assert "\n" not in str(error.value)
    return str(error.value)


def refused_without_opening(path: Path, fifo: Path) -> str:
    """``refusal(path)`` in a subprocess, which would block in ``open(fifo)`` if the reader
    followed anything to it: then it is killed and the test fails."""
    load = (f"import sys; sys.path.insert(0, {str(PACKAGE_ROOT)!r}); import mobilenet_np as mnp\n"
            f"try:\n    mnp.load(sys.argv[1])\nexcept ValueError as error:\n"
            f"    print(error)\n    sys.exit(3)\n")
    try:
        run = subprocess.run([sys.executable, "-c", load, str(path)], capture_output=True,
                             text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading {path.name} opened {fifo.name} (blocked until killed)")
    assert run.returncode == 3, f"{path.name}: loaded, or crashed: {run.stderr[-800:]}"
    assert run.stdout.count("\n") == 1
    return run.stdout.strip()


def as_archive(weights: Path, path: Path) -> Path:
    """A ``.keras`` zip holding ``weights`` as its ``model.weights.h5``."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.write(weights, "model.weights.h5")
    return path


def test_the_uncrafted_file_loads(tmp_path) -> None:
    """The control: what the tests below break is a file that loads."""
    assert mnp.load(legacy_file(tmp_path / "w.h5")).family.name == "v1"


@pytest.mark.parametrize("kind", ["external", "soft"])
@pytest.mark.parametrize(("layout", "where"), [("legacy", w) for w in V1_LEGACY.values()]
                         + [("keras3", w) for w in KERAS3.values()] + [("archive", KERAS3["dataset"])]
                         + [("full model", "model_weights")])
def test_links_are_refused_not_followed(tmp_path, fifo, layout, where, kind) -> None:
    path = tmp_path / "w.h5"
    if layout == "legacy":
        legacy_file(path)
    elif layout == "full model":  # Keras's model.save: the weights under model_weights/
        with h5py.File(path, "w") as file:
            file["model_weights/placeholder"] = np.ones(1)
    else:
        keras3_file(path)
    with h5py.File(path, "r+") as file:
        file.copy(file[where], "/elsewhere")  # what a soft link points to: a real node
    link = {"external": h5py.ExternalLink(str(fifo), f"/{where}"),
            "soft": h5py.SoftLink("/elsewhere")}[kind]
    with without(path, where) as file:
        file[where] = link
    if layout == "archive":
        path = as_archive(path, tmp_path / "m.keras")
    message = refused_without_opening(path, fifo) if kind == "external" else refusal(path)
    assert f"is a {type(link).__name__}" in message and "refused" in message


@pytest.mark.parametrize("storage", ["external", "virtual"])
@pytest.mark.parametrize(("layout", "where"), [("legacy", V1_LEGACY["dataset"]),
                                               ("keras3", KERAS3["dataset"])])
def test_datasets_kept_in_another_file_are_refused(tmp_path, fifo, layout, where,
                                                   storage) -> None:
    path = legacy_file(tmp_path / "w.h5") if layout == "legacy" else keras3_file(tmp_path / "w.h5")
    shape = (3, 3, 3, 8)

    with without(path, where) as file:
        if storage == "external":  # raw bytes in another file, named in the dataset's header
            file.create_dataset(where, shape, np.float32,
                                external=[(str(fifo), 0, int(np.prod(shape)) * 4)])
        else:  # a virtual dataset: a view of a dataset in another file
            layout = h5py.VirtualLayout(shape, np.float32)
            layout[...] = h5py.VirtualSource(str(fifo), "kernel", shape)
            file.create_virtual_dataset(where, layout)
    message = refused_without_opening(path, fifo)
    assert "keeps its values in another file" in message and "refused" in message


@pytest.mark.parametrize("size", ["one huge dataset", "many small ones"])
def test_arrays_past_the_memory_budget_are_refused(tmp_path, monkeypatch, size) -> None:
    """An HDF5 dataset can declare 256 GiB in a few KB of file (chunks never written): refused
    before anything is allocated; so is a file whose arrays add up past the budget."""
    path = legacy_file(tmp_path / "w.h5")
    if size == "one huge dataset":
        with without(path, V1_LEGACY["dataset"]) as file:
            file.create_dataset(V1_LEGACY["dataset"], (1 << 36,), np.float32, chunks=(1 << 20,))
        assert path.stat().st_size < 4 << 20
    else:  # V1 0.25 holds 1.9 MB of arrays
        monkeypatch.setattr(keras_files, "MAX_WEIGHTS_BYTES", 1 << 20)
    limit = keras_files.MAX_WEIGHTS_BYTES >> 20
    assert f"takes the arrays read past {limit} MiB: refused" in refusal(path)


@pytest.mark.parametrize("missing", ["layer group", "dataset"])
def test_a_listed_name_that_is_not_in_the_file(tmp_path, missing) -> None:
    path = legacy_file(tmp_path / "w.h5")
    with h5py.File(path, "r+") as file:
        if missing == "layer group":
            file.attrs["layer_names"] = [*file.attrs["layer_names"], b"ghost"]
        else:
            del file[V1_LEGACY["dataset"]]
    assert re.search(r"lists '(ghost|conv1/kernel:0)', which is not in the file", refusal(path))


def test_an_archive_without_weights(tmp_path) -> None:
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", '{"keras_version": "3.15.1"}')
        archive.writestr("config.json", "{}")
    assert "not a Keras archive (no model.weights.h5" in refusal(path)


@pytest.mark.parametrize(("member", "limit"), [("model.weights.h5", "MAX_WEIGHTS_BYTES"),
                                               ("config.json", "MAX_CONFIG_BYTES")])
def test_a_zip_bomb_member_is_refused(tmp_path, monkeypatch, member, limit) -> None:
    """A member that unpacks to far more than it weighs stops at the limit (here 2 MiB, not
    the real 1 GiB / 64 MiB, to stay fast), and leaves nothing unpacked behind."""
    monkeypatch.setattr(keras_files, limit, 2 << 20)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "unpacked"))
    (tmp_path / "unpacked").mkdir()
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, b" " * (8 << 20))  # 8 MiB of one byte: ~8 KiB compressed
        if member != "model.weights.h5":
            archive.write(keras3_file(tmp_path / "w.h5"), "model.weights.h5")
    assert path.stat().st_size < (1 << 20) // 8
    assert f"member {member} unpacks to more than 2 MiB: refused" in refusal(path)
    assert list((tmp_path / "unpacked").iterdir()) == []
