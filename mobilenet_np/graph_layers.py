"""A Keras graph (``keras_graph.py``) as this package's layer table, in running order.

Each node becomes layers by its class (``graph_classes.CONVERTERS``). The table is run in
order by the one interpreter (``interpreter.py``), which feeds each layer the output of the
layer before it and lets a join (``Add``, ``Multiply``) read one earlier output
(``Layer.source``). A graph that branches otherwise (two paths that each run several layers)
is refused, naming the layer that reads out of order.
"""

from __future__ import annotations

import dataclasses

from .errors import UnsupportedError
from .graph_classes import CONVERTERS, Converter
from .keras_graph import KerasGraph
from .keras_graph_weights import Origin
from .layers import Layer


def graph_layers(graph: KerasGraph) -> tuple[list[Layer], dict[str, Origin]]:
    """The graph's layer table, in running order, each join's ``source`` set; and where each
    layer's weights are (``keras_graph_weights.read_graph_weights``)."""
    converter = Converter(graph)
    alias = {graph.input_name: graph.input_name}  # a node -> the layer whose output it returns
    previous = graph.input_name
    for node in graph.nodes:
        convert = CONVERTERS.get(node.class_name)
        if convert is None:
            raise converter.fail(node, f"a layer class this package does not read (it reads "
                                       f"{', '.join(sorted(CONVERTERS))})")
        inputs = tuple(alias[name] for name in node.inputs)
        node = dataclasses.replace(node, inputs=inputs)
        start = len(converter.layers)
        convert(node, converter, converter.shapes[inputs[0]])
        new = converter.layers[start:]
        if not new:  # identity: the node returns its input
            alias[node.name] = inputs[0]
            continue
        first = new[0]
        if first.source is not None:  # a join: one input is the layer before, the other saved
            if previous not in inputs:
                raise converter.fail(node, f"reads {inputs}, and neither is the layer just before "
                                           f"it ({previous}): a graph with parallel branches")
            other = [name for name in inputs if name != previous] or [previous]
            converter.layers[start] = dataclasses.replace(first, source=other[0])
        elif inputs[0] != previous:
            raise converter.fail(node, f"reads {inputs[0]!r}, not the layer just before it "
                                       f"({previous!r}): a graph with parallel branches")
        previous = alias[node.name] = new[-1].name
        converter.shapes[previous] = new[-1].output_shape
    if alias.get(graph.output, graph.output) != previous:
        raise UnsupportedError(f"{graph.source}: the model's output {graph.output!r} is not its "
                               f"last layer")
    if not converter.layers:
        raise UnsupportedError(f"{graph.source}: the model computes nothing (only identities)")
    return converter.layers, converter.origins
