"""The edges of a Keras layer graph: which outputs each layer call reads, in both generations.

A layer's ``inbound_nodes`` list its calls (a layer called twice has two). One call's inputs:

- Keras 2 (tf.keras, tf_keras): ``[[name, node_index, tensor_index, kwargs], ...]``, or for a
  ``TFOpLambda`` a single ``[name, node_index, tensor_index, {"y": 3.0}]``, its constant in kwargs;
- Keras 3: ``{"args": [...], "kwargs": {...}}``, each tensor a ``{"class_name":
  "__keras_tensor__", "config": {"keras_history": [name, node_index, tensor_index]}}``, a list of
  them for ``Add``/``Multiply``, and plain numbers for constants (``x + 3.0``).

Everything here is JSON data: read, never executed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UnsupportedError, WeightsError


@dataclass(frozen=True)
class Call:
    """One call of a layer: the (layer, node) outputs it reads, and the scalars it was given."""

    tensors: tuple[tuple[str, int], ...]  # ((layer name, node index), ...), in argument order
    constants: tuple[float, ...] = ()  # e.g. (3.0,) for ``x + 3.0``


def layer_call(layer: dict, where: str) -> Call | None:
    """The one call of ``layer`` (None for an input layer); a layer called twice is refused."""
    nodes = layer.get("inbound_nodes") or []
    if not nodes:
        return None
    if not isinstance(nodes, list):
        raise WeightsError(f"{where}: layer {layer.get('name')!r} has inbound_nodes that are not "
                           f"a list (a damaged config)")
    if len(nodes) > 1:
        raise UnsupportedError(f"{where}: layer {layer.get('name')!r} is called {len(nodes)} "
                               f"times (a shared layer): only graphs that call each layer once "
                               f"are read")
    node = nodes[0]
    return _keras3_call(node, where) if isinstance(node, dict) else _keras2_call(node, where)


def _keras2_call(node: list, where: str) -> Call:
    """``[[name, node, tensor, kwargs], ...]``, or one ``[name, node, tensor, kwargs]``."""
    entries = [node] if node and isinstance(node[0], str) else node
    tensors, constants = [], []
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) >= 3 and isinstance(entry[0], str)):
            raise WeightsError(f"{where}: an inbound node entry {str(entry)[:80]} is not "
                               f"[layer, node, tensor, kwargs]")
        tensors.append(_tensor(entry[0], entry[1], entry[2], where))
        kwargs = entry[3] if len(entry) > 3 and isinstance(entry[3], dict) else {}
        constants += [value for key, value in kwargs.items() if key == "y" and _number(value)]
    return Call(tuple(tensors), tuple(float(c) for c in constants))


def _keras3_call(node: dict, where: str) -> Call:
    """``{"args": [tensor | [tensor, ...] | number, ...], "kwargs": {...}}``."""
    tensors, constants = [], []

    def visit(value) -> None:
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            history = value.get("config", {}).get("keras_history")
            if not (isinstance(history, list) and len(history) == 3):
                raise WeightsError(f"{where}: a tensor without keras_history [layer, node, tensor]")
            tensors.append(_tensor(*history, where))
        elif isinstance(value, list):
            for item in value:
                visit(item)
        elif _number(value):
            constants.append(float(value))
        elif value is not None:
            raise UnsupportedError(f"{where}: a layer call with an argument of type "
                                   f"{type(value).__name__} ({str(value)[:60]}): not read")

    visit(node.get("args", []))
    for key, value in (node.get("kwargs") or {}).items():
        if key not in ("mask", "training"):  # Keras's own bookkeeping, not inputs
            visit(value)
    return Call(tuple(tensors), tuple(constants))


def _tensor(name, node_index, tensor_index, where: str) -> tuple[str, int]:
    if not isinstance(name, str) or not isinstance(node_index, int) or tensor_index != 0:
        raise UnsupportedError(f"{where}: input {name!r} (node {node_index}, tensor "
                               f"{tensor_index}): only single-output layers are read")
    return name, node_index


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def endpoints(model: dict, key: str, where: str) -> list[str]:
    """A Functional model's ``input_layers`` or ``output_layers``: the layer names, in order.
    Keras 3 writes one endpoint as ``[name, 0, 0]``, Keras 2 as ``[[name, 0, 0]]``."""
    value = model.get(key)
    if not isinstance(value, list) or not value:
        raise WeightsError(f"{where}: model {model.get('name')!r} has no {key}")
    entries = [value] if isinstance(value[0], str) else value
    names = []
    for entry in entries:
        if not (isinstance(entry, list) and entry and isinstance(entry[0], str)):
            raise WeightsError(f"{where}: model {model.get('name')!r} has a malformed {key}")
        names.append(entry[0])
    return names
