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

# Keras's order of a layer's variables where one Keras layer makes several of ours, or holds
# arrays we do not use (a Normalization's sample count); other layers: our kinds' order.
KERAS_ORDER = {"SeparableConv2D": ("depthwise_kernel", "pointwise_kernel", "bias"),
               "Normalization": ("mean", "variance", "count")}
ALIASES = {"kernel": "depthwise_kernel"}
Origin = tuple[str, dict[str, str]]  # (node name, {our weight name: Keras's weight name})


def read_graph_weights(path: str | os.PathLike, graph: KerasGraph, layers: list[Layer],
                       origins: dict[str, Origin]) -> Stored:
    """{layer name: {weight name: array}} for every layer of ``layers`` that has weights;
    ``origins`` says which node (and which of its arrays) each layer's weights come from."""
    nodes = {node.name: node for node in graph.nodes}
    wanted: dict[str, list[str]] = {}  # node -> the Keras weight names its layers need
    for layer in layers:
        if layer.weights:
            node, names = origins[layer.name]
            wanted.setdefault(node, []).extend(names[weight] for weight in layer.weights)
    path = Path(path)
    try:
        if graph.archive:
            with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as folder:
                copy = Path(folder) / "model.weights.h5"
                if "model.weights.h5" not in archive.namelist():
                    raise WeightsError(f"{path}: a .keras zip without model.weights.h5")
                _bounded_copy(archive, "model.weights.h5", copy, MAX_WEIGHTS_BYTES)
                with h5py.File(copy, "r") as file:
                    found = _by_position(file, nodes, wanted, str(path))
        else:
            with h5py.File(path, "r") as file:
                if "model_weights" not in file:
                    raise WeightsError(f"{path}: a saved model without a model_weights group")
                found = _by_name(_child(file, "model_weights"), nodes, wanted, str(path))
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise WeightsError(f"{path}: damaged weights ({type(error).__name__}: {error})") from None
    stored = Stored(layout=f"Keras graph ({'.keras' if graph.archive else 'model.save .h5'})")
    for layer in layers:
        if layer.weights:
            node, names = origins[layer.name]
            stored[layer.name] = {weight: found[node][names[weight]] for weight in layer.weights
                                  if names[weight] in found[node]}
    stored.source = str(path)
    return stored


def _by_position(file: h5py.File, nodes: dict[str, Node], wanted: dict[str, list[str]],
                 source: str) -> dict[str, dict]:
    """Keras 3's layout: a layer's i-th variable is its i-th weight in Keras's order."""
    found, budget = {}, _Budget()
    for name, weights in wanted.items():
        node = nodes[name]
        order = KERAS_ORDER.get(node.class_name, tuple(weights))
        where = f"{node.keras3_path}/vars"
        if where not in file:
            raise WeightsError(f"{source}: no weights for layer {node.keras_name!r} (expected "
                               f"{where})")
        variables = _child(file, where)
        if len(variables) != len(order):
            raise WeightsError(f"{source}: layer {node.keras_name!r} has {len(variables)} arrays, "
                               f"expected {len(order)} ({', '.join(order)})")
        found[name] = {weight: _array(_child(variables, str(i)), budget)
                       for i, weight in enumerate(order) if weight in weights}
    return found


def _by_name(root: h5py.Group, nodes: dict[str, Node], wanted: dict[str, list[str]],
             source: str) -> dict[str, dict]:
    """The legacy layout: each array's name says its layer (after any enclosing model's name)."""
    found, budget, listed = {}, _Budget(), {}
    for name, weights in wanted.items():
        node = nodes[name]
        if node.legacy_group not in listed:
            listed[node.legacy_group] = _attribute_list(_child(root, node.legacy_group),
                                                        "weight_names")
        group = _child(root, node.legacy_group)
        arrays = {}
        for path in listed[node.legacy_group]:
            *owner, weight = path.split(":")[0].split("/")
            if weight not in weights:  # Keras 3's .h5 calls a depthwise kernel "kernel"
                weight = ALIASES.get(weight, weight)
            if weight in weights and _owned_by(owner, node):
                arrays[weight] = _array(_child(group, path), budget)
        if not arrays:
            raise WeightsError(f"{source}: no weights for layer {node.keras_name!r} in group "
                               f"{node.legacy_group!r}")
        found[name] = arrays
    return found


def _owned_by(owner: list[str], node: Node) -> bool:
    """Whether a weight path (``sequential/dense_1``) names this node: its own name, perhaps
    behind the names of the models that enclose it."""
    own = node.keras_name.split("/")
    if not owner:  # tf.keras names some arrays bare ("mean:0"): the group's own layer's
        return node.legacy_group == node.keras_name
    if owner[len(owner) - len(own):] != own:
        return False
    return all(part in node.scopes for part in owner[:len(owner) - len(own)])
