"""Weights: read Keras HDF5 files with h5py (no TensorFlow), check them, store them as ``.npz``.

In memory, weights are one flat dict ``Params``: ``"conv_dw_3_bn/gamma" -> array``, the
Keras layer name and weight name joined by "/". Every array is checked against the layer
table's shapes on load, so a file for another alpha or a damaged file fails with a message
that says what the file holds.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from .layers import Layer, Params
from .registry import FAMILIES, Family, Stored, get_family

# Keras 3 ``.weights.h5`` files name layers by class and position (conv2d, conv2d_1, ...),
# not by layer name; these are the classes behind each of our layer kinds.
KERAS_CLASSES = {"conv2d": "conv2d", "pointwise_conv2d": "conv2d", "classifier": "conv2d",
                 "depthwise_conv2d": "depthwise_conv2d", "batch_norm": "batch_normalization",
                 "dense": "dense"}
KERAS3_KEY = r"([a-z0-9_]+?)(?:_(\d+))?"  # "conv2d_12" -> class "conv2d", position 12


def read_keras_h5(path: str | os.PathLike) -> Stored:
    """Read a Keras weights file: legacy (``layer_names`` attribute) or Keras 3 ``.weights.h5``.

    Returns {layer name: {weight name: array}} for every layer that has weights. Keras 3
    layers come back named by position (``conv2d_3``) with weights "0", "1", ...; see
    ``name_keras3_layers``.
    """
    try:
        with h5py.File(path, "r") as file:
            root = file["model_weights"] if "model_weights" in file else file  # a full-model save
            if "layer_names" in root.attrs:
                return _read_legacy(root)
            if "layers" in root:
                return _read_keras3(root["layers"])
    except OSError as error:
        raise ValueError(f"{path}: not a readable HDF5 weights file (truncated or not HDF5?): "
                         f"{error}") from None
    raise ValueError(f"{path}: an HDF5 file, but not Keras weights (no 'layer_names' attribute "
                     f"and no 'layers' group)")


def _text(value: bytes | str) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _read_legacy(root: h5py.Group) -> Stored:
    """Keras 2 layout: a group per layer, its attribute ``weight_names`` like ``conv1/kernel:0``."""
    stored = {}
    for layer_name in map(_text, root.attrs["layer_names"]):
        group = root[layer_name]
        names = [_text(n) for n in group.attrs.get("weight_names", [])]
        if names:  # "conv_dw_1/depthwise_kernel:0" -> "depthwise_kernel"
            stored[layer_name] = {n.split("/")[-1].split(":")[0]: np.asarray(group[n])
                                  for n in names}
    return stored


def _read_keras3(layers: h5py.Group) -> Stored:
    """Keras 3 layout: ``layers/<class>_<k>/vars/<i>``."""
    stored = {}
    for key, group in layers.items():
        variables = group.get("vars")
        if variables is not None and len(variables):
            stored[key] = {str(i): np.asarray(variables[str(i)]) for i in range(len(variables))}
    return stored


def name_keras3_layers(stored: Stored, family: Family | None = None) -> Stored:
    """Give Keras 3 positional entries (``conv2d_3`` / "0") the layer and weight names.

    The k-th stored layer of a class is the k-th layer of that class in the family's table
    (with its top, in order), as Keras 3 saves them. Without ``family``, every registered
    family is tried, and the first whose table fits names the file.
    """
    if not all(re.fullmatch(KERAS3_KEY, key) and "0" in w for key, w in stored.items()):
        return stored  # already named (legacy or .npz)
    if family is not None:
        return _name_by_position(stored, family.layers(include_top=True))
    for candidate in FAMILIES.values():
        with contextlib.suppress(ValueError):
            return _name_by_position(stored, candidate.layers(include_top=True))
    raise ValueError(f"Keras 3 weights whose numbered layers fit no family's table "
                     f"({', '.join(FAMILIES)})")


def _name_by_position(stored: Stored, layers: list[Layer]) -> Stored:
    """Name numbered Keras 3 layers after the layers of one table, checking array counts."""
    by_class: dict[str, list[Layer]] = {}
    for layer in layers:
        if layer.weights:
            by_class.setdefault(KERAS_CLASSES[layer.kind], []).append(layer)
    named = {}
    for key, arrays in stored.items():
        match = re.fullmatch(KERAS3_KEY, key)
        position = int(match.group(2) or 0)
        candidates = by_class.get(match.group(1), [])
        if position >= len(candidates):
            raise ValueError(f"Keras 3 weights hold a layer '{key}' that the model does not have")
        layer = candidates[position]
        if len(arrays) != len(layer.weights):
            raise ValueError(f"Keras 3 weights: '{key}' ({layer.name}) holds {len(arrays)} arrays, "
                             f"expected {len(layer.weights)} ({', '.join(layer.weights)})")
        named[layer.name] = dict(zip(layer.weights, arrays.values(), strict=True))
    return named


def infer_config(stored: Stored) -> dict:
    """What a weights file holds, read off its shapes: ``{"arch", **builder options}``.

    Each registered family's ``recognise`` is asked in turn; the first that knows the file
    answers (see ``families/``).
    """
    for family in FAMILIES.values():
        config = family.recognise(stored)
        if config is not None:
            return {"arch": family.name, **config}
    raise ValueError(f"not MobileNet weights this package knows (layers "
                     f"{sorted(stored)[:4]}...; families {', '.join(FAMILIES)})")


def describe_weights(stored: Stored) -> str:
    """A one-line account of what a weights file holds, e.g. for error messages."""
    return describe_config(infer_config(stored))


def describe_config(config: dict) -> str:
    """``infer_config``'s answer in one line: "MobileNet V1 alpha=0.25, with a 1000-class top"."""
    family = get_family(config["arch"])
    options = ", ".join([f"alpha={config['alpha']:g}"]
                        + [f"{name}={config[name]}" for name in family.options if name in config])
    top = f"a {config['classes']}-class top" if config["include_top"] else "no top"
    return f"{family.title} {options}, with {top}"


def check_params(stored: Stored, layers: list[Layer], source: str,
                 droppable: frozenset[str] = frozenset()) -> Params:
    """Match stored arrays to the layer table: every name present, none extra, every shape equal.

    Layers named in ``droppable`` may be in the file and are ignored: a file with a classifier
    loads into a model without one.
    """
    expected = {layer.name: layer for layer in layers if layer.weights}
    extra = set(stored) - set(expected) - droppable
    missing = [name for name in expected if name not in stored]
    problems = []
    if missing:
        problems.append(f"missing layers {missing[:4]}{' ...' if len(missing) > 4 else ''}")
    if extra:
        problems.append(f"unexpected layers {sorted(extra)[:4]}")
    params = {}
    for name, layer in expected.items():
        arrays = stored.get(name, {})
        for weight, shape in layer.weights.items():
            array = arrays.get(weight)
            if array is None:
                if name not in missing:
                    problems.append(f"{name} has no '{weight}' (has {sorted(arrays)})")
                continue
            if array.shape != shape:
                problems.append(f"{name}/{weight} has shape {array.shape}, expected {shape}")
                continue
            if array.dtype.kind != "f":
                problems.append(f"{name}/{weight} has dtype {array.dtype}, expected floats")
            params[f"{name}/{weight}"] = np.ascontiguousarray(array, dtype=np.float32)
    if problems:
        raise ValueError(f"{source}: weights do not fit the model: " + "; ".join(problems[:6]))
    return params


def read_weights_file(path: str | os.PathLike, family: Family | None = None) -> Stored:
    """Read ``.npz`` (ours) or ``.h5`` (Keras) weights into {layer: {weight: array}}.

    ``family`` names the layers of Keras 3 files, which are only numbered (default: the first
    registered family whose table fits).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".npz":
        stored: Stored = {}
        for key, array in load_npz(path).items():
            layer, _, weight = key.rpartition("/")
            stored.setdefault(layer, {})[weight] = array
        return stored
    return name_keras3_layers(read_keras_h5(path), family)


def load_weights(weights: str | os.PathLike | Stored, layers: list[Layer],
                 family: Family) -> Params:
    """Params for ``layers`` from a ``.h5`` / ``.npz`` file, or from what ``read_weights_file``
    already read out of one (read once, build several models: they share its arrays), every
    name and shape checked."""
    read = isinstance(weights, dict)
    stored = weights if read else read_weights_file(weights, family)
    source = "the weights given" if read else str(weights)
    # The family's classifier layers: a file with a top loads into a model without one.
    droppable = frozenset(layer.name for layer in family.layers(include_top=True)
                          if layer.role == "top" and layer.weights)
    try:
        return check_params(stored, layers, source, droppable)
    except ValueError as error:
        holds = describe_weights(stored)
        raise ValueError(f"{error}\n{source} holds {holds}: pass the matching options "
                         f"(e.g. alpha=..., include_top=...) or another file") from None


def load_npz(path: str | os.PathLike) -> Params:
    """Arrays of an ``.npz`` file, never unpickling (``allow_pickle=False``)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as error:  # object arrays need pickle: refuse them
        raise ValueError(f"{path}: holds pickled objects, refused (only plain arrays are "
                         f"loaded): {error}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npz file (truncated?): {error}") from None


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds.

    A failure (or Ctrl-C) leaves no half-written file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".part")
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_npz(params: Params, path: str | os.PathLike) -> None:
    """Write params to ``path`` atomically, one array per "layer/weight" key."""
    with atomic_output(path) as temporary, open(temporary, "wb") as file:
        np.savez(file, **params)


def convert(source: str | os.PathLike, destination: str | os.PathLike,
            family: Family | None = None) -> dict:
    """Convert a Keras HDF5 file to ``.npz`` after checking every array; return what it holds."""
    stored = read_weights_file(source, family)
    config = infer_config(stored)
    options = {k: v for k, v in config.items() if k != "arch"}
    layers = get_family(config["arch"]).layers(**options)
    save_npz(check_params(stored, layers, str(source)), destination)
    return config
