"""Measure every kind of .tflite file against TFLite's interpreter: docs/int8.md's table of file kinds.

    python scripts/tflite_files_report.py     # needs TensorFlow (the test extra); Google's real
                                              # files from ../shared/real-tflite when present

For each kind: the tensor types, which kernels run it, the largest output difference from
TFLite's builtin kernels over the sample pixels (matplotlib's two photos and one seeded noise
image; integer outputs in LSB, float ones absolute) with how many tensors were compared, and
for Google's files the top-1 label on each photo. Float tensors run end to end that are not
bit for bit TFLite's are counted by op kind (over the 3 images); a float file (whose float ops
run on BLAS by default) is measured again with ``float_order="tflite"``. Files converted here
(a Keras MobileNetV2 0.35/96 with random weights, a TF1-style uint8 graph) have no meaningful
top-1.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's package and test helpers
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from helpers import photos  # noqa: E402
from helpers.int8_cases import interpreter  # noqa: E402
from helpers.tflite_cases import (  # noqa: E402
    REAL,
    REAL_FILES,
    converted_files,
    dynamic_range_files,
    gold_input,
    run_gold,
    sample_pixels,
    uint8_graph_file,
    uint8_v3_ops_file,
)

from mobilenet_np.errors import MobileNetError  # noqa: E402
from mobilenet_np.int8 import Int8Classifier, float_blas, load_tflite  # noqa: E402
from mobilenet_np.int8.float_graph import float_kernels, is_hybrid  # noqa: E402


def tiers(model) -> str:
    """Which kernels run the file: integer (int8/uint8), float, hybrid (int8 weights on floats)."""
    graph = model.graph
    kinds = {"hybrid" if is_hybrid(graph, op) else np.dtype(graph.tensors[op.outputs[0]].dtype).name
             for op in graph.operators if op.opcode not in ("RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE")}
    return " + ".join(sorted(kinds - {"int32"}))


def float_sums(graph) -> bool:
    """Whether the graph has float ops whose order of summation ``float_order`` picks."""
    summed = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MEAN", "AVERAGE_POOL_2D", "SOFTMAX"}
    return any(op.opcode in summed and graph.tensors[op.outputs[0]].dtype == np.float32
               for op in graph.operators)


def hybrid_differing(model, tensors: dict) -> int:
    """Hybrid ops (int8 weights, float activations) replayed on TFLite's inputs that differ."""
    graph, differing = model.graph, 0
    for op, run in model.steps:
        weights, out = graph.tensors[op.inputs[1]] if op.inputs[1:] else None, graph.tensors[op.outputs[0]]
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and \
                weights.dtype == np.int8 and out.dtype == np.float32:
            inputs = [tensors[graph.tensors[i].name] for i in op.inputs if i >= 0]
            differing += not np.array_equal(run(*inputs), tensors[out.name])
    return differing


def float_differing(model, ours: dict, tensors: dict) -> Counter:
    """Op kinds whose float32 output (run end to end) is not bit for bit TFLite's, with counts."""
    graph = model.graph
    return Counter(op.opcode for op in graph.operators if graph.tensors[op.outputs[0]].dtype == np.float32
                   and not np.array_equal(ours[graph.tensors[op.outputs[0]].name],
                                          tensors[graph.tensors[op.outputs[0]].name]))


def compare(model, gold, pixels: np.ndarray) -> tuple[float, int, Counter]:
    """Largest |ours - TFLite| on the output over the images, integer tensors (or hybrid ops
    replayed on TFLite's inputs) that differ, and float tensors that differ, by op kind."""
    worst, differing, floats = 0.0, 0, Counter()
    for image in pixels:
        x = gold_input(model, image[None])  # uint8 or float inputs: every kind measured here
        tensors = run_gold(gold, x)
        out, ours = model.forward(x, capture=True)
        worst = max(worst, float(np.abs(out.astype(np.float64) - tensors[model.output.name]).max()))
        differing += sum(not np.array_equal(v, tensors[n]) for n, v in ours.items() if v.dtype.kind in "iu")
        differing += hybrid_differing(model, tensors)
        floats += float_differing(model, ours, tensors)
    return worst, differing, floats


def top1(model) -> str:
    """The top-1 label on each sample photo, as ``classify --tflite`` gives it."""
    classifier = Int8Classifier(model)
    size = model.input.shape[1]
    probs = classifier.predict(photos.whole(size))
    return "; ".join(classifier.classes[int(i)][1].split(",")[0] for i in probs.argmax(axis=1))


def row(kind: str, blob: bytes, real: bool) -> str:
    try:
        model = load_tflite(blob)
    except MobileNetError as error:
        return f"| {kind} | refused: {str(error).split(': ', 1)[1]} | | | |"
    io = f"{np.dtype(model.input.dtype).name} -> {np.dtype(model.output.dtype).name}"
    measured = describe(model, blob)
    if float_kernels(model.graph, "auto") is float_blas and float_sums(model.graph):  # on BLAS by default
        exact = describe(load_tflite(blob, float_order="tflite"), blob)
        measured += f"; with `float_order=\"tflite\"`: {exact}"
    return (f"| {kind} | {io}, {model.output.shape[-1]} classes | {tiers(model)} | {measured} "
            f"| {top1(model) if real else '-'} |")


def describe(model, blob: bytes) -> str:
    """The largest output difference, and which tensors differ, as the table prints them."""
    worst, differing, floats = compare(model, interpreter(tf, blob), sample_pixels(model.input.shape[1]))
    unit = " LSB" if model.output.dtype != np.float32 else ""
    off = ", ".join(f"{opcode} x{count}" for opcode, count in sorted(floats.items())) or "none"
    return (f"{worst:.3g}{unit} ({differing} integer tensors or hybrid ops differ; float tensors "
            f"not bit-exact: {off})")


def main() -> None:
    print("| file | in -> out | kernels | max abs diff vs TFLite on 3 images | top-1 on the 2 photos |")
    print("| --- | --- | --- | --- | --- |")
    for name in REAL_FILES:
        if (REAL / name).is_file():
            print(row(name, (REAL / name).read_bytes(), True))
    for kind, blob in converted_files(tf).items():
        print(row(f"converted V2 0.35/96: {kind}", blob, False))
    print(row("converted V3-Small 0.75/96: dynamic range", dynamic_range_files(tf)["v3-small"], False))
    print(row("TF1-style uint8 graph (inference_type=tf.uint8)", uint8_graph_file(tf, 0), False))
    print(row("TF1-style uint8 graph of V3's ops (MUL, LOGISTIC, MEAN keep_dims, CONCATENATION)",
              uint8_v3_ops_file(tf), False))


if __name__ == "__main__":
    main()
