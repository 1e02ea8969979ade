"""``GraphModel``: any Keras model file whose graph this package reads, run like a ``Network``.

    model = load_model("flowers.keras")  # a fine-tuned MobileNetV2 + Dense(5, softmax)
    model.predict(x)                     # what Keras's model.predict returns
    table = model.summary()              # a string: its layers, shapes, params and MACs

The graph comes from the file's own description (``keras_graph.py``), read as data; its
layers become our kinds (``graph_layers.py``), its blocks are recovered by pattern
(``graph_blocks.py``) and its arrays are found where each Keras generation stores them
(``keras_graph_weights.py``). ``forward``, ``predict``, the fused path, the cost counters and
the profiler are ``Network``'s.
"""

from __future__ import annotations

import os
import re

import numpy as np

from .backends import build_steps, check_backend
from .checks import PIXELS, SCALED, check_input, check_weights, zero_channel_layer
from .errors import InputError, MobileNetError, UnsupportedError, WeightsError
from .graph_blocks import compile_graph_plan, graph_blocks
from .graph_layers import graph_layers
from .keras_graph import KerasGraph, read_graph, saved_config
from .keras_graph_weights import read_graph_weights
from .model import Network
from .random_init import calibrate_batch_norm, random_weights
from .registry import Family
from .reports import summary_table
from .shapes import as_float32
from .stored import Stored
from .weights import check_finite, check_params, file_options, read_weights_file

PREPROCESSING = {"pixels": PIXELS, "scaled": SCALED}  # what a model's input takes: [0, 255], [-1, 1]
APPLICATION_NAME = re.compile(r"(?i)^mobilenet")  # keras.applications' models: [-1, 1] inputs


class GraphModel(Network):
    """A model read from a Keras graph: ``forward`` layer by layer, ``predict`` fused."""

    def __init__(self, graph: KerasGraph, weights: str | os.PathLike | Stored | None = None,
                 backend: str = "numpy", preprocessing: str | None = None, seed: int = 0) -> None:
        check_backend(backend)
        self.graph, self.family, self.config, self.alpha = graph, None, {}, None
        try:
            layers, self.origins = graph_layers(graph)
            self.blocks = graph_blocks(layers, graph.input_name)
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, MobileNetError):
                raise
            # a config field of the wrong type or missing: a damaged or hand-edited file
            raise WeightsError(f"{graph.source}: a damaged model config ({type(error).__name__}: "
                               f"{error})") from None
        self.layers = [layer for block in self.blocks for layer in block.layers]
        thin = zero_channel_layer(self.layers)
        if thin is not None:
            raise WeightsError(f"{graph.source}: layer {thin.name} is 0 channels wide")
        self.input_shape = graph.input_shape  # (H, W, C): 1 or 3 channels, any size
        self.include_top = self.layers[-1].kind == "softmax"
        if preprocessing is not None and preprocessing not in PREPROCESSING:
            raise InputError(f"preprocessing must be one of {', '.join(PREPROCESSING)}, got "
                             f"{preprocessing!r}")
        # "pixels", "scaled", or None: the file does not say (the range is then not checked)
        self.preprocessing = preprocessing or input_range(graph, self.layers)
        self.expects_pixels = self.preprocessing == "pixels"
        if weights is None:
            self.params = calibrate_batch_norm(self.steps("logits"), random_weights(
                self.layers, seed), self.random_input(2, seed))
        else:
            stored = weights if isinstance(weights, Stored) else \
                read_graph_weights(weights, graph, self.layers, self.origins)
            self.params = check_finite(check_params(stored, self.layers), graph.source)
            check_weights(self.params, self.layers, graph.source)
        self.backend = backend
        self.plan = compile_graph_plan(self.blocks, self.params, self.include_top)
        self.fused_steps = build_steps(self.plan, backend)

    @property
    def class_count(self) -> int | None:
        """How many numbers the model answers per image (its classes), or None for features."""
        shape = self.layers[-1].output_shape
        return shape[0] if len(shape) == 1 else None

    def check_input(self, x: np.ndarray, check_range: bool = True) -> np.ndarray:
        """As ``Network.check_input``; the range is checked only when the model says it."""
        if self.preprocessing is not None:
            return super().check_input(x, check_range)
        x = as_float32("x", np.asarray(x), "GraphModel")
        if x.ndim != 4 or x.shape[1:] != self.input_shape:
            raise InputError(f"this model takes (N, {', '.join(map(str, self.input_shape))}) "
                             f"images, got {tuple(x.shape)}")
        check_input(x, SCALED, check_range=False)  # NaN and infinity only
        return x

    def describe(self) -> str:
        """One line: the model's name, input, blocks and what it answers."""
        kinds = [block.kind for block in self.blocks]
        counts = ", ".join(f"{kinds.count(kind)} {kind}" for kind in dict.fromkeys(kinds))
        takes = {"pixels": "pixels in [0, 255]", "scaled": "values in [-1, 1] (preprocess_input)",
                 None: "an input range the file does not say (pass preprocessing=...)"}
        answer = "probabilities" if self.include_top else "outputs"
        return (f"Keras model {self.graph.model_name!r} (Keras {self.graph.keras_version}): "
                f"input {self.input_shape} taking {takes[self.preprocessing]}; blocks: {counts}; "
                f"{self.layers[-1].output_shape[-1]} {answer}")

    def summary(self) -> str:
        """The layers' output shapes, params and MACs, under a line describing the model."""
        return f"{self.describe()}\n{summary_table(self.layers)}"


def input_range(graph: KerasGraph, layers: list) -> str | None:
    """What the model takes, from its own layers: a leading ``Rescaling`` or ``Normalization``
    takes pixels; a ``keras.applications`` MobileNet inside takes [-1, 1] (its
    ``preprocess_input``); else None (the file does not say)."""
    first = {node.name: node for node in graph.nodes}.get(layers[0].name)
    if first is not None and first.class_name in ("Rescaling", "Normalization"):
        return "pixels"
    scopes = {scope for node in graph.nodes for scope in node.scopes}
    if any(APPLICATION_NAME.match(scope) for scope in scopes):
        return "scaled"
    return None


def load_model(path: str | os.PathLike, backend: str = "numpy",
               preprocessing: str | None = None) -> GraphModel:
    """The model a Keras file (``model.save``: ``.keras`` or ``.h5``) describes, with its weights."""
    return GraphModel(read_graph(path), path, backend, preprocessing)


WEIGHT_CLASSES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "BatchNormalization",
                  "Dense", "Normalization")  # the Keras classes that hold arrays


def is_foreign(graph: KerasGraph, stock_layers: list, keras_name=None) -> bool:
    """Whether a Keras file's graph is something else than the stock ``keras.applications``
    model whose table is ``stock_layers``: nested models, a layer before its first (a
    ``Rescaling`` the table does not have), or layers with arrays that it does not have (a
    new head)."""
    rename = keras_name or (lambda name: name)
    first = rename(graph.nodes[0].name) if graph.nodes else ""
    weighted = {rename(node.name) for node in graph.nodes if node.class_name in WEIGHT_CLASSES}
    return _nested(graph) or first != stock_layers[0].name or weighted != {
        layer.name for layer in stock_layers if layer.weights}


def _nested(graph: KerasGraph) -> bool:
    """Whether the graph has a model inside (a fine-tuned backbone: never a stock file)."""
    return any(len(node.scopes) > 1 for node in graph.nodes)


def read_model_file(path: str | os.PathLike, family: Family | None = None
                    ) -> tuple[KerasGraph | None, Stored | None]:
    """A Keras or .npz file, its model config and its arrays each read once: (graph, None) for
    a saved model read by its graph; (graph, arrays by name) for a stock ``keras.applications``
    MobileNet, which loads as its family's ``Network`` as before (graph None: weights alone,
    or a graph this reader cannot take). ``family`` names a Keras 3 file's numbered layers."""
    saved, graph, refusal = saved_config(path), None, None
    if saved is not None:
        try:
            graph = read_graph(path, saved)
        except UnsupportedError as error:  # a stock file may still load by name
            refusal = error
    if graph is not None and _nested(graph):
        return graph, None
    try:
        stored = read_weights_file(path, family)
        found, config = file_options(stored)
    except (WeightsError, UnsupportedError):
        if saved is None:
            raise
        if refusal is not None:  # neither by name nor by its graph: the graph's reason
            raise refusal from None
        return graph, None
    if graph is not None and is_foreign(graph, found.layers(**config), found.keras_name):
        return graph, None
    return graph, stored
