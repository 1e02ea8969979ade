"""A Keras model's own description of its graph, read as data: the layers, their calls, their
configs, with nested models (a ``Functional`` or ``Sequential`` inside another, to any depth)
flattened into one list of ``Node`` records in the order Keras runs them.

Where the description lives: the ``model_config`` attribute of a ``model.save("m.h5")`` file
(both generations), ``config.json`` in a ``.keras`` zip. It is parsed with ``json`` only:
nothing is imported, unpickled or executed. Layers that carry code (``Lambda``) or come from
a module outside Keras (a custom class) are refused here, naming the layer, its class and the
file; which classes are understood is ``graph_layers.py``'s table.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from .errors import MobileNetError, UnsupportedError, WeightsError
from .files import is_special_file
from .keras_edges import endpoints, layer_call
from .keras_files import MAX_CONFIG_BYTES, _bounded_copy, _text

MODEL_CLASSES = ("Functional", "Model", "Sequential")
MAX_LAYERS = 5000  # MobileNetV3-Large has ~260; a crafted config of millions is refused
MAX_DEPTH = 32  # models nested in models
KERAS_MODULES = ("keras", "tf_keras")  # where Keras's own classes live


@dataclass(frozen=True)
class Node:
    """One layer of the flattened graph: its class, config, inputs and where its weights are."""

    name: str  # unique in the whole graph (a nested layer whose name repeats gets a prefix)
    class_name: str  # Keras's class, e.g. "Conv2D"
    config: dict  # Keras's config of the layer, as written
    inputs: tuple[str, ...]  # the nodes (or the graph's input) whose outputs it reads, in order
    constants: tuple[float, ...] = ()  # scalars it was called with (``x + 3.0``)
    keras_name: str = ""  # its name in its own model (what weight names in a .h5 start with)
    scopes: tuple[str, ...] = ()  # the names of the models it is nested in, outermost first
    legacy_group: str = ""  # legacy .h5: the top-level layer whose group holds its weights
    keras3_path: str = ""  # .keras: ``layers/functional/layers/conv2d_3``, class and position


@dataclass
class KerasGraph:
    """A whole model: its nodes in running order, its input and its output."""

    nodes: list[Node]
    input_name: str
    input_shape: tuple[int, ...]  # (H, W, C), no batch axis
    output: str  # the node whose output the model returns
    keras_version: str  # "2.21.0", "3.15.1", or "?"
    source: str  # the file's path
    model_name: str
    archive: bool = False  # a .keras zip (weights by class and position), else a legacy .h5
    names: set[str] = field(default_factory=set)

    @property
    def generation(self) -> int:
        """2 or 3: the Keras generation that wrote the file (hard_sigmoid differs between them)."""
        return 3 if self.keras_version.startswith("3") else 2


Config = tuple[dict, str, bool]  # (the model's config as JSON data, Keras version, a .keras zip)


def read_graph(path: str | os.PathLike, saved: Config | None = None) -> KerasGraph:
    """The graph of a ``.keras`` zip or a ``model.save`` ``.h5`` file, as data (``saved``: its
    config, if ``saved_config`` read it already)."""
    path = Path(path)
    config, version, archive = saved or _read_config(path)
    try:
        return _graph(config, version, archive, str(path))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        if isinstance(error, MobileNetError):
            raise
        # JSON of the wrong shape (a field missing, a list where a record belongs): at this
        # boundary every such failure means a damaged or hand-edited config
        raise WeightsError(f"{path}: a damaged model config ({type(error).__name__}: "
                           f"{error})") from None


def _graph(config, version: str, archive: bool, where: str) -> KerasGraph:
    """The graph of a config already parsed."""
    if not isinstance(config, dict) or config.get("class_name") not in MODEL_CLASSES:
        kind = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise UnsupportedError(f"{where}: the file describes a {kind}, not a Keras model "
                               f"(Functional or Sequential)")
    graph = KerasGraph([], "", (), "", version, where, str(config["config"].get("name", "")),
                       archive)
    outputs = _flatten(config, None, (), "layers/", "", graph, 0)
    if len(outputs) != 1:
        raise UnsupportedError(f"{where}: a model with {len(outputs)} outputs: only one is read")
    graph.output = outputs[0]
    if not graph.input_name:
        raise WeightsError(f"{where}: the config names no input layer")
    return graph


def saved_config(path: str | os.PathLike) -> Config | None:
    """The config of a saved Keras model (``model.save``), or None: weights alone, a damaged
    config, or not a Keras file (a pipe or device is never opened)."""
    if is_special_file(path):
        return None
    try:
        if not zipfile.is_zipfile(path):
            with h5py.File(path, "r") as file:
                if "model_config" not in file.attrs:
                    return None
        saved = _read_config(Path(path))
    except (OSError, zipfile.BadZipFile, WeightsError):
        return None
    config = saved[0]
    return saved if isinstance(config, dict) and config.get("class_name") in MODEL_CLASSES else None


def _read_config(path: Path) -> Config:
    """(the model's config as JSON data, the Keras version that wrote it, whether a zip)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if "config.json" not in archive.namelist():
                    raise WeightsError(f"{path}: a zip without config.json: not a saved Keras model")
                text = _bounded_copy(archive, "config.json", None, MAX_CONFIG_BYTES)
                meta = {}
                if "metadata.json" in archive.namelist():
                    meta = json.loads(_bounded_copy(archive, "metadata.json", None, 1 << 20))
            return json.loads(text), str(meta.get("keras_version", "3")), True
        with h5py.File(path, "r") as file:
            if "model_config" not in file.attrs:
                raise WeightsError(f"{path}: weights only (no model_config): the graph is not in "
                                   f"the file; save it with model.save(...)")
            text = _text(file.attrs["model_config"])
            version = _text(file.attrs.get("keras_version", "2"))
        if len(text) > MAX_CONFIG_BYTES:
            raise WeightsError(f"{path}: a model config over {MAX_CONFIG_BYTES >> 20} MiB: refused")
        return json.loads(text), version, False
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f"{path}: an unreadable model config ({type(error).__name__}: "
                           f"{error})") from None


def snake_case(class_name: str) -> str:
    """Keras 3's key for a class in weight files: ``DepthwiseConv2D`` -> ``depthwise_conv2d``."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _flatten(model: dict, inputs: list[str] | None, scopes: tuple[str, ...], keras3_path: str,
             legacy_group: str, graph: KerasGraph, depth: int) -> list[str]:
    """Add the nodes of ``model`` (fed by ``inputs``, None at the top) to ``graph``; return the
    names of its outputs."""
    where = graph.source
    config = model.get("config")
    if depth > MAX_DEPTH or not isinstance(config, dict):
        raise WeightsError(f"{where}: models nested over {MAX_DEPTH} deep, or a model without a "
                           f"config: refused")
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise WeightsError(f"{where}: model {config.get('name')!r} lists no layers")
    if len(graph.nodes) + len(layers) > MAX_LAYERS:
        raise UnsupportedError(f"{where}: more than {MAX_LAYERS} layers: refused (MobileNetV3-"
                               f"Large has ~260)")
    scopes = (*scopes, str(config.get("name", "")))
    sequential = model.get("class_name") == "Sequential"
    local: dict[str, str] = {}  # a layer's name in this model -> its node (or input) in the graph
    input_names = [] if sequential else endpoints(config, "input_layers", where)
    positions: Counter = Counter()
    previous = inputs[0] if sequential and inputs else None
    for layer in layers:
        if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
            raise WeightsError(f"{where}: model {scopes[-1]!r} has a layer that is not a "
                               f"{{class_name, config}} record")
        cls, name = str(layer.get("class_name")), str(layer.get("name") or layer["config"].get("name"))
        _refuse_code(layer, cls, name, where)
        kind = snake_case(cls)  # Keras 3 numbers each class's layers: conv2d, conv2d_1, ...
        key = f"{kind}_{positions[kind]}" if positions[kind] else kind
        positions[kind] += 1
        if cls == "InputLayer":
            local[name] = _input(layer, name, input_names, inputs, graph, sequential)
            previous = local[name]
            continue
        if sequential:
            if previous is None:  # no InputLayer: the first layer says the shape
                previous = local[name + "_input"] = _input(layer, name + "_input", [], None,
                                                           graph, True, config)
            sources = [previous]
            constants: tuple[float, ...] = ()
        else:
            call = layer_call(layer, f"{where}: {name}")
            if call is None:
                raise WeightsError(f"{where}: layer {name!r} ({cls}) has no inbound nodes")
            missing = [source for source, _ in call.tensors if source not in local]
            if missing:
                raise WeightsError(f"{where}: layer {name!r} reads {missing[0]!r}, which is not "
                                   f"an earlier layer of {scopes[-1]!r} (missing, or a cycle)")
            sources, constants = [local[source] for source, _ in call.tensors], call.constants
        if cls in MODEL_CLASSES:
            outputs = _flatten(layer, sources, scopes, f"{keras3_path}{key}/layers/",
                               legacy_group or name, graph, depth + 1)
            if len(outputs) != 1:
                raise UnsupportedError(f"{where}: nested model {name!r} has {len(outputs)} "
                                       f"outputs: only one is read")
            local[name] = outputs[0]
        else:
            unique = name if name not in graph.names else "/".join((*scopes[1:], name))
            graph.names.add(unique)
            graph.nodes.append(Node(unique, cls, layer["config"], tuple(sources), constants, name,
                                    scopes, legacy_group or name, f"{keras3_path}{key}"))
            local[name] = unique
        previous = local[name]
    if sequential:
        return [previous] if previous else []
    return [local[name] if name in local else _missing(name, scopes, where)
            for name in endpoints(config, "output_layers", where)]


def _missing(name: str, scopes: tuple[str, ...], where: str) -> str:
    raise WeightsError(f"{where}: model {scopes[-1]!r} outputs {name!r}, which it does not have")


def _refuse_code(layer: dict, cls: str, name: str, where: str) -> None:
    """Lambda layers and classes from other modules hold code: never looked up, refused."""
    module = layer.get("module")
    registered = str(layer.get("registered_name") or "")
    if cls == "Lambda":
        raise UnsupportedError(f"{where}: layer {name!r} is a Lambda (Python code in the file), "
                               f"never run here: rebuild the model with Keras layers")
    if (module and str(module).split(".")[0] not in KERAS_MODULES) or ">" in registered:
        raise UnsupportedError(f"{where}: layer {name!r} is a custom class {cls!r} from "
                               f"{module or registered!r}: its code is never imported; only "
                               f"Keras's own layers are read")


def _input(layer: dict, name: str, input_names: list[str], inputs: list[str] | None,
           graph: KerasGraph, sequential: bool, model_config: dict | None = None) -> str:
    """An input layer: the outer tensor feeding it (nested), or the graph's own input."""
    if inputs is not None:  # nested: the caller's tensor, by position
        position = input_names.index(name) if name in input_names else 0
        return inputs[min(position, len(inputs) - 1)]
    if graph.input_name:
        raise UnsupportedError(f"{graph.source}: a model with several inputs "
                               f"({graph.input_name}, {name}): only one is read")
    config = layer["config"]
    shape = (config.get("batch_shape") or config.get("batch_input_shape")
             or (model_config or {}).get("build_input_shape"))
    if not isinstance(shape, list) or len(shape) != 4 or not all(
            isinstance(size, int) and size > 0 for size in shape[1:]):
        raise UnsupportedError(f"{graph.source}: input {name!r} has shape {shape}: only images "
                               f"(batch, height, width, channels) of a fixed size are read")
    graph.input_name, graph.input_shape = name, tuple(shape[1:])
    return name
