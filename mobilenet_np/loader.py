"""``mnp.load``: a model from any file this package reads, chosen by what the file holds.

A .tflite file (by its identifier) runs on the TFLite runtime (``int8/``); a saved Keras model
that is not a stock MobileNet (fine-tuned, nested, built layer by layer) is read by its graph
(``graph_model.py``); any other Keras or .npz weights file builds its family's ``Network``.
"""

from __future__ import annotations

import os

from .errors import InputError
from .graph_model import GraphModel, read_model_file
from .int8 import TFLiteModel, is_tflite, load_tflite
from .model import Network
from .weights import file_options


def load(path: str | os.PathLike, **options) -> Network | GraphModel | TFLiteModel:
    """The model a file holds; ``options`` (e.g. ``resolution=160``) override what it tells,
    where the file leaves them open (a .tflite takes none, a saved graph ``backend`` and
    ``preprocessing`` only)."""
    if is_tflite(path):  # the file fixes the model: no options apply
        if options:
            raise InputError(f"{path}: a .tflite file fixes its model: drop {', '.join(options)}")
        return load_tflite(path)
    graph, stored = read_model_file(path)
    if stored is None:  # read by its graph
        fixed = sorted(set(options) - {"backend", "preprocessing"})
        if fixed:
            raise InputError(f"{path} is a saved model: its graph fixes the model and its input "
                             f"size, so drop {', '.join(fixed)} (backend= and preprocessing= "
                             f"are taken)")
        return GraphModel(graph, path, **options)
    family, config = file_options(stored)
    if graph is not None:  # a saved model says its input size; weights alone do not
        config["resolution"] = graph.input_shape[:2]
    return Network(family, stored, **{**config, **options})
