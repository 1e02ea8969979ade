"""TFLite model metadata (``metadata_schema.fbs``): the input's normalization, the labels file's name.

Files written by TFLite Support's metadata writers (Google's hosted models, Model Maker) keep,
in the model's ``metadata`` list, a buffer named ``TFLITE_METADATA``: a second FlatBuffer
(file identifier "M001") describing the inputs and outputs. Read here, as data: the first
input's ``NormalizationOptions`` (a float input takes ``(pixels - mean) / std``) and the name of
the output's labels file (``TENSOR_AXIS_LABELS``), which sits in the zip appended to the file
(``tflite_file.packed_files``). Slots, in ``metadata_schema.fbs`` order:

* ModelMetadata: subgraph_metadata 3. SubGraphMetadata: input_tensor_metadata 2,
  output_tensor_metadata 3. TensorMetadata: process_units 4, associated_files 6.
* ProcessUnit: options_type 0 (1 = NormalizationOptions), options 1. NormalizationOptions:
  mean 0, std 1. AssociatedFile: name 0, type 2 (2 = TENSOR_AXIS_LABELS).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..progress import logger
from .tflite_file import Graph, _flatbuffers, _Reader

NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union type
TENSOR_AXIS_LABELS = 2  # AssociatedFileType


@dataclass(frozen=True)
class Metadata:
    """What a classifier needs of the metadata: normalization (None if absent), labels file name."""

    mean: np.ndarray | None  # (1,) or (C,) float32
    std: np.ndarray | None
    labels_file: str | None


def _floats(table: _Reader, slot: int) -> np.ndarray:
    """A [float] field as a float32 array, empty when absent."""
    values = table.array(slot, "<f4")
    return np.zeros(0, np.float32) if values is None else np.array(values, np.float32)


def read_metadata(raw: bytes) -> Metadata:
    """Parse a TFLITE_METADATA buffer; ValueError (or struct.error) if it is damaged."""
    table_type = _flatbuffers()
    if len(raw) < 8 or raw[4:8] != b"M001":
        raise ValueError("no 'M001' identifier")
    root = _Reader(table_type(raw, struct.unpack_from("<I", raw, 0)[0]))
    subgraphs = root.children(3)
    if not subgraphs:
        return Metadata(None, None, None)
    inputs, outputs = subgraphs[0].children(2), subgraphs[0].children(3)
    mean = std = None
    for unit in inputs[0].children(4) if inputs else []:
        options = unit.child(1)
        if unit.scalar(0, "B", 0) != NORMALIZATION_OPTIONS or options is None:
            continue
        mean, std = (_floats(options, slot) for slot in (0, 1))
        if not len(mean) or not len(std) or not np.all(std != 0):
            raise ValueError(f"normalization mean {mean.tolist()}, std {std.tolist()}")
    labels = [f.string(0) for f in (outputs[0].children(6) if outputs else [])
              if f.scalar(2, "b", 0) == TENSOR_AXIS_LABELS]
    return Metadata(mean, std, labels[0] if labels else None)


def file_metadata(graph: Graph, name: str) -> Metadata | None:
    """The file's TFLite metadata, or None; damaged metadata is a warning, not a refusal (the
    model still runs, with the conventions ``preprocess`` states)."""
    if graph.metadata is None:
        return None
    try:
        return read_metadata(graph.metadata)
    except (ValueError, struct.error, IndexError, TypeError) as error:
        logger.warning("%s: its TFLite metadata cannot be read (%s): ignored", name, error)
        return None


def packed_labels(graph: Graph, classes: int, named: str | None) -> list[str] | None:
    """The labels file packed in the file: the one the metadata names, else the first with
    one line per class."""
    ordered = sorted(graph.packed, key=lambda file: file != named)  # the named file first
    for text in (graph.packed[file] for file in ordered):
        lines = text.decode("utf8", "replace").splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        if len(lines) == classes:
            return [line.strip() for line in lines]
    return None
