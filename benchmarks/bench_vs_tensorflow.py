"""NumPy MobileNet (V1 or V2) vs TensorFlow on this CPU, measured side by side in one run.

    pip install -e ".[test,bench,jit]"   # TensorFlow, tf2onnx, onnxruntime, Numba
    python benchmarks/bench_vs_tensorflow.py [--arch v1|v2] [--alpha 1.0] [--resolution 224]
        [--repeats 7] [--batches 1 8 32] [--blas-kernels widest|unset|NAME]

Every contender runs the same random weights and inputs at each batch size, interleaved
round by round (so a noisy moment hurts all of them alike): our fused path with the numpy
and the numba backend (when Numba is installed), Keras (eager, ``predict``, graph) and ONNX
Runtime (when ``tf2onnx`` and ``onnxruntime`` are installed). Prints medians with min-max,
the ratios the speed issues target, the BLAS report (``machine.blas_report``) and our peak
RSS at batch 32 per backend (each in a fresh child process, so TensorFlow's memory is not
counted). ``--blas-kernels`` re-executes the benchmark with ``OPENBLAS_CORETYPE`` set to the
widest kernels this CPU runs, to a given name, or unset (OpenBLAS's own choice): OpenBLAS
reads it once, when NumPy loads it. Not a test: nothing here asserts a time.
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
arch, alpha, resolution, batch, backend = sys.argv[1:]
model = mnp.Network(mnp.get_family(arch), weights=None, backend=backend, alpha=float(alpha),
                    resolution=int(resolution))
x = model.random_input(int(batch))
model.predict(x)
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(int(status.split()[0]))  # KiB
"""


KERAS_MODELS = {"v1": "MobileNet", "v2": "MobileNetV2"}
BLAS_ENV = "OPENBLAS_CORETYPE"


def build(arch: str, alpha: float, resolution: int) -> tuple[dict, object]:
    """Our model per backend and a Keras model, all holding the same random weights."""
    import importlib.util

    import keras

    import mobilenet_np as mnp

    backends = ["numpy"] + (["numba"] if importlib.util.find_spec("numba") else [])
    ours = {backend: mnp.Network(mnp.get_family(arch), weights=None, backend=backend,
                                 alpha=alpha, resolution=resolution) for backend in backends}
    theirs = getattr(keras.applications, KERAS_MODELS[arch])(
        input_shape=(resolution, resolution, 3), alpha=alpha, weights=None)
    for layer in ours["numpy"].layers:
        if layer.weights:
            theirs.get_layer(layer.name).set_weights(
                [ours["numpy"].params[f"{layer.name}/{w}"] for w in layer.weights])
    return ours, theirs


def make_runners(ours: dict, theirs, batch: int) -> dict:
    import tensorflow as tf

    graph = tf.function(lambda x: theirs(x, training=False))
    runners = {
        "numpy fused": lambda x: ours["numpy"].predict(x, batch_size=8),
        "numpy fused, no lanes": lambda x: ours["numpy"].predict(x, batch_size=8, threads=1),
        **({"numba": lambda x: ours["numba"].predict(x, batch_size=8)} if "numba" in ours else {}),
        "numpy readable": lambda x: ours["numpy"].predict(x, batch_size=8, fused=False),
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


def peak_rss_mib(arch: str, alpha: float, resolution: int, batch: int, backend: str) -> float:
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, arch, str(alpha), str(resolution),
                          str(batch), backend], capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def reexecute_with_blas_kernels(choice: str | None) -> None:
    """Start this benchmark again with OPENBLAS_CORETYPE as asked ("widest": the widest kernels
    this CPU runs; "unset": OpenBLAS's own choice), unless it already is so."""
    from mobilenet_np.machine import cpu_flags, widest_coretype

    if choice is None:
        return
    wanted = {"widest": widest_coretype(cpu_flags()), "unset": None}.get(choice, choice)
    if os.environ.get(BLAS_ENV) == wanted:
        return
    env = {k: v for k, v in os.environ.items() if k != BLAS_ENV}
    if wanted:
        env[BLAS_ENV] = wanted
    print(f"re-running with {BLAS_ENV}={wanted or '(unset)'}", flush=True)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=list(KERAS_MODELS), default="v1")
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--blas-kernels", metavar="widest|unset|NAME",
                        help=f"re-run with {BLAS_ENV} set to the widest kernels this CPU runs, "
                             f"unset, or NAME (default: as the environment has it)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    reexecute_with_blas_kernels(args.blas_kernels)
    from mobilenet_np.machine import blas_report, format_blas_report

    ours, theirs = build(args.arch, args.alpha, args.resolution)
    results = {"arch": args.arch, "alpha": args.alpha, "resolution": args.resolution,
               "batches": {}}
    rng = np.random.default_rng(0)
    for batch in args.batches:
        x = rng.uniform(-1, 1, (batch, args.resolution, args.resolution, 3)).astype(np.float32)
        runners = make_runners(ours, theirs, batch)
        keras_probs = runners["keras graph (tf.function)"](x)
        check = {backend: float(np.abs(model.predict(x) - keras_probs).max())
                 for backend, model in ours.items()}
        before = cpu_jiffies()
        timing = measure(runners, x, args.repeats)
        after = cpu_jiffies()
        steal = None if before is None else \
            100 * (after[0] - before[0]) / max(1, after[1] - before[1])
        results["batches"][batch] = {"max_abs_prob_difference": check, "times": timing,
                                     "cpu_steal_percent": steal}
    results["peak_rss_mib_batch32"] = {backend: peak_rss_mib(args.arch, args.alpha,
                                                             args.resolution, 32, backend)
                                       for backend in ours}
    results["threadpools"] = [{k: info.get(k) for k in ("internal_api", "num_threads", "version",
                                                        "architecture")}
                              for info in threadpool_info()]
    results["cpu_count"] = os.cpu_count()
    results["blas_report"] = blas_report()
    results["blas_report_text"] = format_blas_report(results["blas_report"])
    print(report(results))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


def report(results: dict) -> str:
    lines = [f"MobileNet {results['arch']} {results['alpha']}/{results['resolution']}, float32, "
             f"{results['cpu_count']} CPUs; BLAS: {results['threadpools']}", ""]
    for batch, data in results["batches"].items():
        times = data["times"]
        steal = data["cpu_steal_percent"]
        differences = ", ".join(f"{backend} {value:.1e}"
                                for backend, value in data["max_abs_prob_difference"].items())
        lines.append(f"batch {batch} (max |prob difference| vs keras: {differences}; CPU time "
                     f"stolen by the hypervisor: {'n/a' if steal is None else f'{steal:.1f}%'})")
        lines.append(f"  {'contender':<28}{'median ms':>10}{'min-max ms':>18}{'img/s':>8}")
        for name, t in times.items():
            lines.append(f"  {name:<28}{t['median_ms']:>10.1f}"
                         f"{t['min_ms']:>9.1f}-{t['max_ms']:<8.1f}"
                         f"{1e3 * batch / t['median_ms']:>8.1f}")
        graph = times["keras graph (tf.function)"]["median_ms"]
        onnx = times.get("onnxruntime", {}).get("median_ms")
        for ours, keras_target, onnx_target in (("numpy fused", "0.9", "1.5 at 32"),
                                                ("numba", "0.7", "1.2 at 32")):
            if ours not in times:
                continue
            mine = times[ours]["median_ms"]
            lines.append(f"  ratio {ours} / keras graph = {mine / graph:.2f} (target <= "
                         f"{keras_target})" + ("" if onnx is None else
                                               f"; / onnxruntime = {mine / onnx:.2f} (target "
                                               f"<= {onnx_target})"))
        lines.append("")
    rss = ", ".join(f"{backend} {mib:.0f} MiB" for backend, mib in
                    results["peak_rss_mib_batch32"].items())
    lines.append(f"fused path peak RSS at batch 32: {rss} (target <= 300)")
    lines.append(results["blas_report_text"])
    return "\n".join(lines)


if __name__ == "__main__":
    main()
