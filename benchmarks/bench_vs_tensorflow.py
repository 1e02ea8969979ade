"""NumPy MobileNet V1 vs TensorFlow on this CPU, measured side by side in one run.

    pip install -e ".[test,bench]"   # TensorFlow, tf2onnx, onnxruntime: comparisons only
    python benchmarks/bench_vs_tensorflow.py [--alpha 1.0] [--resolution 224] [--repeats 7]

Every contender runs the same random weights and inputs at batch 1 and 32, interleaved round
by round (so a noisy moment hurts all of them alike). Prints medians with min-max, the ratios
the speed issue targets, the BLAS thread info, and the NumPy path's peak RSS at batch 32
(measured in a fresh child process, so TensorFlow's memory is not counted). ONNX Runtime joins
when ``tf2onnx`` and ``onnxruntime`` are installed. Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# VmHWM, not getrusage: ru_maxrss survives exec and would report the parent's TensorFlow peak.
RSS_CHILD = """
import sys, numpy as np, mobilenet_np as mnp
alpha, resolution, batch = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
model = mnp.MobileNet(alpha=alpha, resolution=resolution, weights=None)
x = np.random.default_rng(0).uniform(-1, 1, (batch, resolution, resolution, 3)).astype("f4")
model.predict(x)
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(int(status.split()[0]))  # KiB
"""


def build(alpha: float, resolution: int):
    """Our model and a Keras model holding the same random weights."""
    import keras

    import mobilenet_np as mnp

    ours = mnp.MobileNet(alpha=alpha, resolution=resolution, weights=None)
    theirs = keras.applications.MobileNet(input_shape=(resolution, resolution, 3), alpha=alpha,
                                          weights=None)
    for layer in ours.layers:
        if layer.weights:
            theirs.get_layer(layer.name).set_weights(
                [ours.params[f"{layer.name}/{w}"] for w in layer.weights])
    return ours, theirs


def make_runners(ours, theirs, batch: int) -> dict:
    import tensorflow as tf

    graph = tf.function(lambda x: theirs(x, training=False))
    runners = {
        "numpy fused": lambda x: ours.predict(x, batch_size=8),
        "numpy fused, no lanes": lambda x: ours.predict(x, batch_size=8, threads=1),
        "numpy readable": lambda x: ours.predict(x, batch_size=8, fused=False),
        "keras eager": lambda x: np.asarray(theirs(x, training=False)),
        "keras predict": lambda x: theirs.predict(x, batch_size=batch, verbose=0),
        "keras graph (tf.function)": lambda x: graph(tf.constant(x)).numpy(),
    }
    onnx = onnx_runner(theirs, batch)
    if onnx is not None:
        runners["onnxruntime"] = onnx
    return runners


def onnx_runner(theirs, batch: int):
    """An ONNX Runtime session of the Keras model, or None when tf2onnx/onnxruntime are absent."""
    try:
        import onnxruntime
        import tensorflow as tf
        import tf2onnx
    except ImportError:
        return None
    spec = (tf.TensorSpec((None, *theirs.input_shape[1:]), tf.float32, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(theirs, input_signature=spec, opset=13)
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def measure(runners: dict, x: np.ndarray, repeats: int, pause: float = 0.5) -> dict:
    """Interleaved rounds: every contender once per round, after one warm-up call each.

    A pause before each run lets the previous contender's idle worker threads (TF's, ONNX
    Runtime's and OpenBLAS's spin-wait after their work) go to sleep, and each round starts
    one contender later than the last, so no one always runs right after the same neighbour.
    """
    for run in runners.values():
        run(x)
    names = list(runners)
    times = {name: [] for name in names}
    for round_number in range(repeats):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            time.sleep(pause)
            start = time.perf_counter()
            runners[name](x)
            times[name].append(time.perf_counter() - start)
    return {name: {"median_ms": 1e3 * float(np.median(t)), "min_ms": 1e3 * min(t),
                   "max_ms": 1e3 * max(t)} for name, t in times.items()}


def cpu_jiffies() -> tuple[int, int] | None:
    """(stolen, total) CPU time so far from Linux's /proc/stat, or None elsewhere.

    "Steal" is time a virtual CPU was ready to run but the hypervisor ran someone else:
    the noise of a shared VM, which no benchmark design removes.
    """
    try:
        with open("/proc/stat") as file:
            fields = [int(v) for v in file.readline().split()[1:]]
    except OSError:
        return None
    return fields[7] if len(fields) > 7 else 0, sum(fields[:8])


def peak_rss_mib(alpha: float, resolution: int, batch: int) -> float:
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(alpha), str(resolution),
                          str(batch)], capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()

    ours, theirs = build(args.alpha, args.resolution)
    results = {"alpha": args.alpha, "resolution": args.resolution, "batches": {}}
    rng = np.random.default_rng(0)
    for batch in args.batches:
        x = rng.uniform(-1, 1, (batch, args.resolution, args.resolution, 3)).astype(np.float32)
        runners = make_runners(ours, theirs, batch)
        check = np.abs(runners["numpy fused"](x) - runners["keras graph (tf.function)"](x)).max()
        before = cpu_jiffies()
        timing = measure(runners, x, args.repeats)
        after = cpu_jiffies()
        steal = None if before is None else \
            100 * (after[0] - before[0]) / max(1, after[1] - before[1])
        results["batches"][batch] = {"max_abs_prob_difference": float(check), "times": timing,
                                     "cpu_steal_percent": steal}
    results["numpy_peak_rss_mib_batch32"] = peak_rss_mib(args.alpha, args.resolution, 32)
    results["threadpools"] = [{k: info.get(k) for k in ("internal_api", "num_threads", "version")}
                              for info in threadpool_info()]
    results["cpu_count"] = os.cpu_count()
    print(report(results))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


def report(results: dict) -> str:
    lines = [f"MobileNet V1 {results['alpha']}/{results['resolution']}, float32, "
             f"{results['cpu_count']} CPUs; BLAS: {results['threadpools']}", ""]
    for batch, data in results["batches"].items():
        times = data["times"]
        steal = data["cpu_steal_percent"]
        lines.append(f"batch {batch} (max |prob difference| numpy vs keras "
                     f"{data['max_abs_prob_difference']:.1e}; CPU time stolen by the "
                     f"hypervisor: {'n/a' if steal is None else f'{steal:.1f}%'})")
        lines.append(f"  {'contender':<28}{'median ms':>10}{'min-max ms':>18}{'img/s':>8}")
        for name, t in times.items():
            lines.append(f"  {name:<28}{t['median_ms']:>10.1f}"
                         f"{t['min_ms']:>9.1f}-{t['max_ms']:<8.1f}"
                         f"{1e3 * batch / t['median_ms']:>8.1f}")
        fused = times["numpy fused"]["median_ms"]
        graph = times["keras graph (tf.function)"]["median_ms"]
        lines.append(f"  ratio numpy fused / keras graph = {fused / graph:.2f} (target <= 0.9)")
        if "onnxruntime" in times:
            lines.append(f"  ratio numpy fused / onnxruntime = "
                         f"{fused / times['onnxruntime']['median_ms']:.2f} (target <= 1.5 at 32)")
        lines.append("")
    lines.append(f"numpy fused path peak RSS at batch 32: "
                 f"{results['numpy_peak_rss_mib_batch32']:.0f} MiB (target <= 300)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
