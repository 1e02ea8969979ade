"""The arrays of each layer of a Keras graph, found where each generation stores them.

- legacy ``.h5`` (``model.save("m.h5")``, both generations): ``model_weights/<top layer>/``
  lists ``weight_names`` such as ``conv1/kernel:0``; a nested model's group holds all its
  layers' arrays, named after each layer (``Conv/BatchNorm/gamma:0``), sometimes behind the
  names of the models around it (Keras 3: ``sequential/dense/kernel``). Matched by name.
- ``.keras`` zip (Keras 3, and tf_keras 2.21): ``model.weights.h5`` holds
  ``layers/<class>_<k>/vars/<i>``, nested models as ``layers/functional/layers/...``: the path
  ``keras_graph.Node.keras3_path`` was computed from the config. Matched by position, in the
  order of the layer's weights (Keras's, which ``kinds.py`` keeps).

Read with ``keras_files.py``'s guarded helpers: no link is followed, no external dataset read,
arrays bounded in total.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import h5py

from .errors import WeightsError
from .keras_files import (
    MAX_WEIGHTS_BYTES,
    _array,
    _attribute_list,
    _bounded_copy,
    _Budget,
    _child,
)
from .keras_graph import KerasGraph, Node
from .layers import Layer
from .stored import Stored


def read_graph_weights(path: str | os.PathLike, graph: KerasGraph, layers: list[Layer]) -> Stored:
    """{layer name: {weight name: array}} for every layer of ``layers`` that has weights."""
    nodes = {node.name: node for node in graph.nodes}
    weighted = [(layer, nodes[layer.name]) for layer in layers if layer.weights]
    path = Path(path)
    try:
        if graph.archive:
            with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as folder:
                copy = Path(folder) / "model.weights.h5"
                if "model.weights.h5" not in archive.namelist():
                    raise WeightsError(f"{path}: a .keras zip without model.weights.h5")
                _bounded_copy(archive, "model.weights.h5", copy, MAX_WEIGHTS_BYTES)
                with h5py.File(copy, "r") as file:
                    return _by_position(file, weighted, str(path))
        with h5py.File(path, "r") as file:
            if "model_weights" not in file:
                raise WeightsError(f"{path}: a saved model without a model_weights group")
            return _by_name(_child(file, "model_weights"), weighted, str(path))
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise WeightsError(f"{path}: damaged weights ({type(error).__name__}: {error})") from None


def _by_position(file: h5py.File, weighted: list[tuple[Layer, Node]], source: str) -> Stored:
    """Keras 3's layout: the i-th variable of a layer is its i-th weight in Keras's order."""
    stored, budget = Stored(layout="Keras graph (.keras)"), _Budget()
    for layer, node in weighted:
        where = f"{node.keras3_path}/vars"
        if where not in file:
            raise WeightsError(f"{source}: no weights for layer {node.keras_name!r} (expected "
                               f"{where})")
        variables = _child(file, where)
        if len(variables) != len(layer.weights):
            raise WeightsError(f"{source}: layer {node.keras_name!r} has {len(variables)} arrays, "
                               f"expected {len(layer.weights)} ({', '.join(layer.weights)})")
        stored[layer.name] = {weight: _array(_child(variables, str(i)), budget)
                              for i, weight in enumerate(layer.weights)}
    stored.source = source
    return stored


def _by_name(root: h5py.Group, weighted: list[tuple[Layer, Node]], source: str) -> Stored:
    """The legacy layout: each array's name says its layer (after any enclosing model's name)."""
    stored, budget = Stored(layout="Keras graph (model.save .h5)"), _Budget()
    listed: dict[str, list[str]] = {}
    for layer, node in weighted:
        if node.legacy_group not in listed:
            listed[node.legacy_group] = _attribute_list(_child(root, node.legacy_group),
                                                        "weight_names")
        group = _child(root, node.legacy_group)
        arrays = {}
        for name in listed[node.legacy_group]:
            *owner, weight = name.split(":")[0].split("/")
            if _owned_by(owner, node):
                arrays[weight] = _array(_child(group, name), budget)
        if not arrays:
            raise WeightsError(f"{source}: no weights for layer {node.keras_name!r} in group "
                               f"{node.legacy_group!r}")
        stored[layer.name] = arrays
    stored.source = source
    return stored


def _owned_by(owner: list[str], node: Node) -> bool:
    """Whether a weight path (``sequential/dense_1``) names this node: its own name, perhaps
    behind the names of the models that enclose it."""
    own = node.keras_name.split("/")
    if owner[len(owner) - len(own):] != own:
        return False
    return all(part in node.scopes for part in owner[:len(owner) - len(own)])
