"""Where the time goes, per layer type: ONNX Runtime's own profiler beside our fused steps.

    pip install -e ".[test,bench,jit]"   # TensorFlow, tf2onnx, onnxruntime, Numba
    python benchmarks/profile_vs_onnx.py [--arch v1|v2] [--batches 8 32] [--repeats 5]
        [--backend numba|numpy]

Both run the same Keras model (random weights; time does not depend on their values) at each
batch. ONNX Runtime: its profiler's per-node kernel times (its fused graph: BN folded, the
activation fused into the convolution), each node typed by its kernel shape and groups read
from the optimized graph it saves. Ours: ``measure.profile_layers(fused=True)``, each fused
step timed where it stands. Both are milliseconds per image, summed by layer type: the
first standard convolution, depthwise, pointwise (1x1), the head (pooling and classifier),
the rest (adds, pads, reshapes, softmax). Our steps run one lane with BLAS on every core, as
``predict`` runs one chunk; ``predict`` itself splits a batch over lanes, so its total (last
row) is lower than the sum of its steps. Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(__file__))
from bench_vs_tensorflow import build  # noqa: E402 (the same models the speed benchmark times)

TYPES = ("first conv", "depthwise", "pointwise", "head", "other")


def onnx_type(node) -> str:
    """A node of ORT's optimized graph as one of TYPES, from its op type, groups and kernel."""
    attrs = {a.name: a for a in node.attribute}
    if node.op_type in ("GlobalAveragePool", "MatMul", "Gemm") or "pred" in node.name.lower():
        return "head"  # V1's classifier is a 1x1 conv named conv_preds; V2's a Dense
    if node.op_type not in ("Conv", "FusedConv"):
        return "other"
    if attrs.get("group") and attrs["group"].i > 1:
        return "depthwise"
    kernel = list(attrs["kernel_shape"].ints) if "kernel_shape" in attrs else None
    return "pointwise" if kernel == [1, 1] else "first conv"


def our_type(row: dict, first: bool) -> str:
    """One of our profile rows as one of TYPES (``first``: the network's first step)."""
    if row["kind"] == "depthwise_conv2d":
        return "depthwise"
    if row["kind"] in ("conv2d", "pointwise_conv2d"):
        return "first conv" if first else "pointwise"
    return "head" if row["kind"] == "head" else "other"


def onnx_profile(theirs, x: np.ndarray, repeats: int) -> dict[str, float]:
    """ONNX Runtime's per-type kernel time, ms per image (median over ``repeats`` runs)."""
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *theirs.input_shape[1:]), tf.float32, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(theirs, input_signature=spec, opset=13)
    with tempfile.TemporaryDirectory() as folder:
        options = onnxruntime.SessionOptions()
        options.enable_profiling, options.profile_file_prefix = True, f"{folder}/ort"
        options.optimized_model_filepath = f"{folder}/optimized.onnx"
        session = onnxruntime.InferenceSession(proto.SerializeToString(), options,
                                               providers=["CPUExecutionProvider"])
        types = {n.name: onnx_type(n) for n in onnx.load(f"{folder}/optimized.onnx").graph.node}
        name = session.get_inputs()[0].name
        session.run(None, {name: x})  # warm-up, dropped below
        for _ in range(repeats):
            session.run(None, {name: x})
        with open(session.end_profiling()) as file:
            events = json.load(file)
    # A run's event is written when it ends: give each node to the run whose span holds it.
    starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    totals = collections.defaultdict(float)  # (type, run) -> microseconds
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            node = event["name"][: -len("_kernel_time")]
            run = int(np.searchsorted(starts, event["ts"], side="right")) - 1
            totals[types.get(node, "other"), run] += event["dur"]
    return {kind: float(np.median([totals[kind, r] for r in range(1, len(starts))]))
            / 1e3 / len(x) for kind in TYPES}


def our_profile(model, batch: int, repeats: int) -> dict[str, float]:
    """Our fused steps' time per type, ms per image."""
    from mobilenet_np.measure import profile_layers

    totals = dict.fromkeys(TYPES, 0.0)
    for i, row in enumerate(profile_layers(model, batch=batch, repeats=repeats, fused=True)):
        totals[our_type(row, i == 0)] += row["seconds"] * 1e3 / batch
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="v1", choices=("v1", "v2"))
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="numba", choices=("numba", "numpy"))
    args = parser.parse_args()
    from mobilenet_np.measure import median_seconds

    ours, theirs = build(args.arch, 1.0, 224)
    model = ours[args.backend]
    for batch in args.batches:
        x = model.random_input(batch)
        theirs_ms, ours_ms = onnx_profile(theirs, x, args.repeats), our_profile(
            model, batch, args.repeats)
        predict_ms = median_seconds(lambda x=x: model.predict(x, batch_size=8),
                                    args.repeats) * 1e3 / batch
        print(f"\n{args.arch} 1.0/224, batch {batch}, ms per image "
              f"(ours: fused, {args.backend})")
        print("| layer type | onnxruntime | ours | ours / onnxruntime |\n| --- | --- | --- | --- |")
        for kind in TYPES:
            ratio = ours_ms[kind] / theirs_ms[kind] if theirs_ms[kind] else float("nan")
            print(f"| {kind} | {theirs_ms[kind]:.2f} | {ours_ms[kind]:.2f} | {ratio:.2f} |")
        print(f"| sum | {sum(theirs_ms.values()):.2f} | {sum(ours_ms.values()):.2f} | "
              f"{sum(ours_ms.values()) / sum(theirs_ms.values()):.2f} |")
        print(f"| ours, predict (lanes) | | {predict_ms:.2f} | "
              f"{predict_ms / sum(theirs_ms.values()):.2f} |")


if __name__ == "__main__":
    main()
