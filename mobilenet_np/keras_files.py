"""Every layout the two Keras generations write, read with h5py and zipfile alone (no TensorFlow).

- legacy weights, Keras 2 ``save_weights("w.h5")``: a root attribute ``layer_names``, and per
  layer ``weight_names`` (``conv1/kernel:0``) in order;
- legacy full model, Keras 2 and Keras 3 ``model.save("m.h5")``: the same under
  ``model_weights/`` (Keras 3 calls a depthwise kernel ``kernel``);
- Keras 3 weights, ``save_weights("w.weights.h5")``: ``layers/<class>_<k>/vars/<i>``, class and
  position only, no layer names;
- Keras 3 archive, ``model.save("m.keras")``: a zip of ``model.weights.h5`` (as above) and
  ``config.json``.

Reading is never executing: nothing is unpickled, ``config.json`` is read as JSON data only (it
may name Lambda layers or custom objects: they are never looked up), and other zip members are
ignored. A weights file must never make the reader open another file: HDF5 external and soft
links, datasets stored in external files and virtual datasets are refused, not followed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .errors import WeightsError
from .stored import Stored

MAX_WEIGHTS_BYTES = 1 << 30  # 1 GiB uncompressed: 40x the largest MobileNet (V2 1.4, ~25 MB)
MAX_CONFIG_BYTES = 64 << 20  # a config.json of MobileNet is ~100 KB


@dataclass
class KerasFile:
    """What a Keras file holds: its arrays by layer, and how they were found."""

    layout: str  # one of the table's rows, e.g. "Keras 3 weights (.weights.h5)"
    stored: Stored  # layer -> {weight name, or position "0", "1", ...: array}
    positional: bool  # True when layers are named by class and position only (Keras 3)


@dataclass
class _Budget:
    """The bytes a file's arrays may still take once read: an HDF5 dataset can declare
    terabytes (unwritten chunks, a fill value) in a few kilobytes of file."""

    left: int = field(default_factory=lambda: MAX_WEIGHTS_BYTES)


def read_keras_file(path: str | os.PathLike) -> KerasFile:
    """Read any Keras layout above from ``path`` (an HDF5 file or a ``.keras`` zip)."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _read_archive(path, _Budget())
        with h5py.File(path, "r") as file:
            return _read_hdf5(file, path, _Budget())
    except WeightsError:
        raise
    except OSError as error:
        raise WeightsError(f"{path}: not a readable HDF5 weights file (truncated or not HDF5?): "
                         f"{error}") from None
    except Exception as error:  # noqa: BLE001
        # h5py and zlib meet damaged bytes here and fail in many ways (KeyError, RuntimeError,
        # TypeError, zlib.error, ...): at this boundary every failure means "damaged file".
        raise WeightsError(f"{path}: a damaged weights file ({type(error).__name__}: "
                         f"{error})") from None


def _read_hdf5(file: h5py.File, path: Path, budget: _Budget) -> KerasFile:
    """The layout of an open HDF5 file, told apart by its structure (Keras 3 has no version)."""
    if "layer_names" in file.attrs or "layer_names0" in file.attrs:
        return KerasFile("legacy weights (Keras 2 save_weights .h5)", _read_legacy(file, budget),
                         False)
    if "model_weights" in file:
        root = _child(file, "model_weights")
        version = _text(file.attrs.get("keras_version", "?"))
        return KerasFile(f"legacy full model (model.save .h5, Keras {version})",
                         _read_legacy(root, budget), False)
    if "layers" in file:
        return KerasFile("Keras 3 weights (.weights.h5)",
                         _read_keras3(_child(file, "layers"), budget), True)
    raise WeightsError(f"{path}: an HDF5 file, but not Keras weights (no 'layer_names' attribute, "
                     f"no 'model_weights' or 'layers' group; has {sorted(file)[:5]})")


def _read_legacy(root: h5py.Group, budget: _Budget) -> Stored:
    """Keras 2's layout: a group per layer, whose ``weight_names`` list its arrays in order."""
    stored = {}
    for layer_name in _attribute_list(root, "layer_names"):
        group = _child(root, layer_name)
        names = _attribute_list(group, "weight_names")
        if names:  # "conv_dw_1/depthwise_kernel:0" -> "depthwise_kernel"
            stored[layer_name] = {name.split("/")[-1].split(":")[0]:
                                  _array(_child(group, name), budget) for name in names}
    return stored


def _read_keras3(layers: h5py.Group, budget: _Budget) -> Stored:
    """Keras 3's layout: ``layers/<class>_<k>/vars/<i>``; layers without arrays are skipped."""
    stored = {}
    for key in layers:
        group = _child(layers, key)
        variables = _child(group, "vars") if "vars" in group else None
        if variables is not None and len(variables):
            stored[key] = {str(i): _array(_child(variables, str(i)), budget)
                           for i in range(len(variables))}
    return stored


def _read_archive(path: Path, budget: _Budget) -> KerasFile:
    """A ``.keras`` zip: its ``model.weights.h5`` (copied out, size-bounded) and its model name."""
    try:
        with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as folder:
            members = archive.namelist()
            if "model.weights.h5" not in members:
                raise WeightsError(f"{path}: a zip file, but not a Keras archive (no "
                                 f"model.weights.h5; holds {members[:5]})")
            model = None
            if "config.json" in members:
                config = json.loads(_bounded_copy(archive, "config.json", None, MAX_CONFIG_BYTES))
                model = config.get("config", {}).get("name") if isinstance(config, dict) else None
            weights = Path(folder) / "model.weights.h5"
            _bounded_copy(archive, "model.weights.h5", weights, MAX_WEIGHTS_BYTES)
            with h5py.File(weights, "r") as file:
                if "layers" not in file:
                    raise WeightsError(f"{path}: its model.weights.h5 has no 'layers' group")
                stored = _read_keras3(_child(file, "layers"), budget)
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f"{path}: a damaged Keras archive ({type(error).__name__}: "
                         f"{error})") from None
    # The model's name from config.json says what a file that fits no family is, in messages.
    return KerasFile(f"Keras 3 archive (.keras{f', model {model!r}' if model else ''})", stored,
                     True)


def _bounded_copy(archive: zipfile.ZipFile, member: str, destination: Path | None,
                  limit: int) -> bytes:
    """Copy a member out, counting the bytes really decompressed (never trusting the header),
    and stop at ``limit``: a zip bomb is one clear error. Without ``destination``, return them."""
    chunks, total = [], 0
    with archive.open(member) as source, \
            (open(destination, "wb") if destination else contextlib.nullcontext()) as out:
        while chunk := source.read(1 << 20):
            total += len(chunk)
            if total > limit:
                raise WeightsError(f"{archive.filename}: member {member} unpacks to more than "
                                 f"{limit >> 20} MiB: refused (a zip bomb?)")
            if destination:
                out.write(chunk)
            else:
                chunks.append(chunk)
    return b"".join(chunks)


def _child(group: h5py.Group, path: str):
    """``group[path]``, walking it one hard link at a time: links to elsewhere are refused."""
    for part in path.split("/"):
        link = group.get(part, getlink=True)
        if link is None:
            raise WeightsError(f"{group.file.filename}: {group.name} lists '{path}', which is not "
                             f"in the file (truncated or hand-edited?)")
        if not isinstance(link, h5py.HardLink):
            target = getattr(link, "filename", None) or getattr(link, "path", "")
            raise WeightsError(f"{group.file.filename}: {group.name}/{part} is a "
                             f"{type(link).__name__} to {target}: refused (a weights file must "
                             f"not make the reader open or follow anything else)")
        group = group[part]
    return group


def _array(dataset: h5py.Dataset, budget: _Budget) -> np.ndarray:
    """A dataset's values, unless they live outside the file (external storage, virtual) or
    would take the file's arrays past the budget."""
    if not isinstance(dataset, h5py.Dataset):
        raise WeightsError(f"{dataset.file.filename}: {dataset.name} is a group, not an array")
    if dataset.is_virtual or dataset.external:
        raise WeightsError(f"{dataset.file.filename}: {dataset.name} keeps its values in another "
                         f"file (virtual or external dataset): refused")
    budget.left -= dataset.nbytes
    if budget.left < 0:
        raise WeightsError(f"{dataset.file.filename}: {dataset.name} {dataset.shape} takes the "
                         f"arrays read past {MAX_WEIGHTS_BYTES >> 20} MiB: refused (a MobileNet "
                         f"holds under 30 MB)")
    return np.asarray(dataset)


def _attribute_list(node: h5py.Group, name: str) -> list[str]:
    """A list attribute as text; Keras splits long ones into ``name0``, ``name1``, ..."""
    if name in node.attrs:
        values = list(node.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in node.attrs:
            values += list(node.attrs[f"{name}{chunk}"])
            chunk += 1
    return [_text(value) for value in values]  # an empty list is stored as float64 (0,)


def _text(value: bytes | str) -> str:
    """Attributes are bytes in files from older writers, str in newer ones."""
    return value.decode("utf8") if isinstance(value, bytes) else str(value)
