"""int8 in NumPy and compiled (Numba) beside TFLite's interpreter and our float paths, one run.

    pip install -e ".[test,jit]"        # TensorFlow (converter, interpreter) and Numba
    python benchmarks/bench_int8.py [--arch v1|v2|v3-large] [--alpha 1.0] [--resolution 224]
        [--batches 1 8 32] [--repeats 7] [--profile] [--blas-kernels widest|unset|NAME]

The Keras model gets the project's calibrated random weights (seed 0) and is converted to a
full-integer .tflite (int8 in and out; 8 seeded calibration images). Contenders, on the same
images at each batch size: our int8 runtime on that file with the numpy and the numba backend
(``load_tflite(..., backend=...).run_quantized``), TFLite's builtin kernels
(``BUILTIN_WITHOUT_DEFAULT_DELEGATES``, what our int8 runtime equals bit for bit, checked
here first), TFLite's default interpreter (XNNPACK), and our float ``predict`` (fused path)
with each backend. Interleaved rounds in rotating order (``bench_vs_tensorflow.measure``);
medians, min-max, the ratios issue #25 targets (int8 numba / TFLite builtin <= 1.0 at batch
1), peak RSS of each int8 backend at the largest batch (a fresh child process each), and the
share of CPU time the hypervisor stole. ``--profile``: where the int8 time goes, per op type,
at batch 1, numpy vs numba, and the compiled requantizing epilogue's cost per output. Not a
test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_vs_tensorflow import cpu_jiffies, measure, reexecute_with_blas_kernels  # noqa: E402

KERAS_MODELS = {"v1": "MobileNet", "v2": "MobileNetV2", "v3-large": "MobileNetV3Large"}
# VmHWM of a fresh process: the int8 runtime alone, without TensorFlow's memory.
RSS_CHILD = """
import sys, numpy as np, mobilenet_np as mnp
path, backend, batch = sys.argv[1:]
model = mnp.load_tflite(path, backend=backend)
q = np.random.default_rng(0).integers(-128, 128, (int(batch), *model.input.shape[1:])).astype(np.int8)
model.run_quantized(q)
print(int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]))  # KiB
"""


def convert(ours, arch: str) -> bytes:
    """The Keras model with our weights, converted to full int8 by TFLite's converter."""
    import keras
    import tensorflow as tf

    theirs = getattr(keras.applications, KERAS_MODELS[arch])(input_shape=ours.input_shape,
                                                             alpha=ours.alpha, weights=None)
    for layer in ours.layers:
        if layer.weights:
            weights = [ours.params[f"{layer.name}/{w}"] for w in layer.weights]
            theirs.get_layer(layer.name).set_weights(weights)
    calibration = ours.random_input(8, seed=1)
    converter = tf.lite.TFLiteConverter.from_keras_model(theirs)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[None]] for image in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def tflite_runner(blob: bytes, builtin: bool, batch: int):
    """A TFLite interpreter as a function of an int8 batch (batch, H, W, 3)."""
    import tensorflow as tf

    options = {"experimental_op_resolver_type":
               tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES} if builtin else {}
    it = tf.lite.Interpreter(model_content=blob, **options)
    index_in, index_out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    it.resize_tensor_input(index_in, (batch, *it.get_input_details()[0]["shape"][1:]))
    it.allocate_tensors()

    def run(q: np.ndarray) -> np.ndarray:
        it.set_tensor(index_in, q)
        it.invoke()
        return it.get_tensor(index_out)
    return run


def profile_ops(model, q: np.ndarray, repeats: int) -> dict[str, float]:
    """Milliseconds per op type for one run of ``model`` on q (the median of ``repeats``)."""
    times = collections.defaultdict(list)
    for _ in range(repeats + 1):
        values, spent = {model.graph.inputs[0]: q}, collections.Counter()
        for op, run in model.steps:
            args = [values[i] if i in values else model.graph.tensors[i].data for i in op.inputs if i >= 0]
            start = time.perf_counter()
            values[op.outputs[0]] = run(*args)
            spent[op.opcode] += time.perf_counter() - start
        for opcode, seconds in spent.items():
            times[opcode].append(seconds)
    return {opcode: 1e3 * float(np.median(t[1:])) for opcode, t in times.items()}  # first: warm-up


def requantize_ns_per_output(repeats: int) -> float:
    """The compiled epilogue alone (bias, multiplier, shift, zero point, clamp): ns per output,
    on V2's largest 1x1 output (112 x 112 x 96), the CPU time of one thread."""
    from mobilenet_np.int8 import reference
    from mobilenet_np.int8.compiled import NumbaKernels
    from mobilenet_np.int8.fixedpoint import Requantize

    rng = np.random.default_rng(0)
    sums = rng.integers(-2**20, 2**20, (112 * 112, 96)).astype(np.float32)  # (P, C)
    out = Requantize(rng.integers(2**30, 2**31, 96), rng.integers(-12, 1, 96), 3,
                     rounding="double_up")  # as TFLite 2.21's per-channel int8 files

    y, core = np.empty(sums.shape, np.int8), NumbaKernels().cores.requantize_loop
    stage = reference.float64_stage(out, 96, rng.integers(-2**16, 2**16, 96))
    seconds = []
    for _ in range(repeats + 1):
        start = time.process_time()
        core(sums, *stage, y)
        seconds.append(time.process_time() - start)
    return 1e9 * float(np.median(seconds[1:])) / sums.size  # first: compiling


def peak_rss_mib(blob: bytes, backend: str, batch: int) -> float:
    with tempfile.NamedTemporaryFile(suffix=".tflite") as file:
        file.write(blob)
        file.flush()
        out = subprocess.run([sys.executable, "-c", RSS_CHILD, file.name, backend, str(batch)],
                             capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=list(KERAS_MODELS), default="v1")
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="per-op times at batch 1, numpy vs numba")
    parser.add_argument("--blas-kernels", default=None)
    args = parser.parse_args()
    reexecute_with_blas_kernels(args.blas_kernels)

    import mobilenet_np as mnp
    from mobilenet_np.int8.ops import quantize

    family = mnp.get_family(args.arch)
    floats = {b: mnp.Network(family, weights=None, seed=0, alpha=args.alpha, resolution=args.resolution,
                             backend=b) for b in ("numpy", "numba")}
    blob = convert(floats["numpy"], args.arch)
    int8 = {b: mnp.load_tflite(blob, backend=b) for b in ("numpy", "numba")}
    print(f"MobileNet {args.arch} {args.alpha}/{args.resolution}, random weights, medians of "
          f"{args.repeats} interleaved rounds (ms per batch), OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    before = cpu_jiffies()
    for batch in args.batches:
        x = floats["numpy"].random_input(batch, seed=2)  # (batch, H, W, 3) float
        q = quantize(x, *int8["numpy"].input_quantization)  # the same images as int8
        builtin, default = tflite_runner(blob, True, batch), tflite_runner(blob, False, batch)
        gold = builtin(q)
        for backend, model in int8.items():
            if not np.array_equal(model.run_quantized(q), gold):
                sys.exit(f"error: int8 {backend} differs from TFLite's builtin kernels at batch {batch}")
        runners = {
            "int8 numpy": functools.partial(int8["numpy"].run_quantized, q),
            "int8 numba": functools.partial(int8["numba"].run_quantized, q),
            "tflite builtin": functools.partial(builtin, q),
            "tflite xnnpack": functools.partial(default, q),
            "float numpy": functools.partial(floats["numpy"].predict, x),
            "float numba": functools.partial(floats["numba"].predict, x),
        }
        results = measure({name: lambda _, run=run: run() for name, run in runners.items()}, x, args.repeats)
        print(f"batch {batch}:")
        for name, r in results.items():
            print(f"  {name:<16} {r['median_ms']:9.2f}   ({r['min_ms']:.2f} - {r['max_ms']:.2f})")
        ms = {name: r["median_ms"] for name, r in results.items()}
        for other in ("tflite builtin", "tflite xnnpack", "int8 numpy", "float numba"):
            print(f"  int8 numba / {other:<16} {ms['int8 numba'] / ms[other]:6.2f}")
    after = cpu_jiffies()
    largest = max(args.batches)
    print(f"peak RSS at batch {largest} (fresh process, int8 runtime only): " + ", ".join(
        f"{b} {peak_rss_mib(blob, b, largest):.0f} MiB" for b in int8))
    if args.profile:
        q = quantize(floats["numpy"].random_input(1, seed=2), *int8["numpy"].input_quantization)
        spent = {b: profile_ops(model, q, args.repeats) for b, model in int8.items()}
        print("where the int8 time goes at batch 1 (ms per op type, median):")
        for opcode in sorted(spent["numba"], key=spent["numba"].get, reverse=True):
            print(f"  {opcode:<20} numpy {spent['numpy'][opcode]:8.2f}   numba {spent['numba'][opcode]:8.2f}")
        ns, graph = requantize_ns_per_output(args.repeats), int8["numba"].graph
        outputs = sum(int(np.prod(graph.tensors[op.outputs[0]].shape[1:])) for op, _ in int8["numba"].steps
                      if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"))
        print(f"the compiled requantizing epilogue alone (one thread): {ns:.2f} ns per "
              f"output; {outputs / 1e6:.2f}M outputs requantized per image: {outputs * ns / 1e6:.1f} ms")
    if before and after:
        print(f"hypervisor steal during the rounds: "
              f"{100 * (after[0] - before[0]) / max(after[1] - before[1], 1):.1f}% of CPU time")
    print(f"load average (1, 5, 15 min) after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
