"""int8 in NumPy beside float NumPy and TFLite's interpreter, MobileNet V1, batch 1, one run.

    pip install -e ".[test]"        # TensorFlow: the converter and TFLite's interpreter
    python benchmarks/bench_int8.py [--alpha 0.25] [--resolution 224] [--repeats 9]

The Keras model gets the project's calibrated random weights (seed 0) and is converted to a
full-integer .tflite (int8 in and out; 8 seeded calibration images). Contenders, each on the
same image: our int8 runtime on that file (``load_tflite(...).run_quantized``), our float
``predict`` (the fused path), TFLite's builtin kernels (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``,
what our int8 runtime equals bit for bit) and TFLite's default interpreter (XNNPACK).
Interleaved rounds in rotating order (``bench_vs_tensorflow.measure``); medians, min-max, and
the share of CPU time the hypervisor stole. Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_vs_tensorflow import cpu_jiffies, measure  # noqa: E402


def convert(ours, resolution: int, alpha: float) -> bytes:
    """The Keras V1 with our weights, converted to full int8 by TFLite's converter."""
    import keras
    import tensorflow as tf

    theirs = keras.applications.MobileNet(input_shape=(resolution, resolution, 3), alpha=alpha,
                                          weights=None)
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


def tflite_runner(blob: bytes, builtin: bool):
    """A TFLite interpreter as a function of one int8 image (1, H, W, 3)."""
    import tensorflow as tf

    options = {"experimental_op_resolver_type":
               tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES} if builtin else {}
    it = tf.lite.Interpreter(model_content=blob, **options)
    it.allocate_tensors()
    index_in, index_out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

    def run(q: np.ndarray) -> np.ndarray:
        it.set_tensor(index_in, q)
        it.invoke()
        return it.get_tensor(index_out)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=0.25)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    import mobilenet_np as mnp
    from mobilenet_np.int8.ops import quantize

    ours = mnp.MobileNet(alpha=args.alpha, resolution=args.resolution, weights=None, seed=0)
    blob = convert(ours, args.resolution, args.alpha)
    int8_model = mnp.load_tflite(blob)
    x = ours.random_input(1, seed=2)  # (1, H, W, 3) float
    q = quantize(x, *int8_model.input_quantization)  # the same image as int8
    builtin, default = tflite_runner(blob, True), tflite_runner(blob, False)
    runners = {
        "numpy int8 (run_quantized)": lambda _: int8_model.run_quantized(q),
        "numpy float (predict, fused)": lambda _: ours.predict(x),
        "tflite int8, builtin kernels": lambda _: builtin(q),
        "tflite int8, default (XNNPACK)": lambda _: default(q),
    }
    if not np.array_equal(int8_model.run_quantized(q), builtin(q)):
        sys.exit("error: our int8 output differs from TFLite's builtin kernels: the timings would "
                 "compare different computations")
    # Not a requirement, a teaching point: XNNPACK's own int8 kernels round differently.
    lsb = np.abs(builtin(q).astype(np.int64) - default(q).astype(np.int64))
    print(f"TFLite XNNPACK vs builtin kernels on this image: max {lsb.max()} LSB, "
          f"{np.count_nonzero(lsb)} of {lsb.size} outputs differ")
    before = cpu_jiffies()
    results = measure(runners, x, args.repeats)
    after = cpu_jiffies()
    print(f"MobileNet V1 {args.alpha}/{args.resolution}, batch 1, random weights, medians of "
          f"{args.repeats} interleaved rounds (ms)")
    for name, r in results.items():
        print(f"  {name:<32} {r['median_ms']:9.2f}   ({r['min_ms']:.2f} - {r['max_ms']:.2f})")
    int8 = results["numpy int8 (run_quantized)"]["median_ms"]
    for name in list(results)[1:]:
        print(f"  numpy int8 / {name:<30} {int8 / results[name]['median_ms']:7.2f}")
    if before and after:
        print(f"  hypervisor steal during the rounds: "
              f"{100 * (after[0] - before[0]) / max(after[1] - before[1], 1):.1f}% of CPU time")
    print(f"  load average (1, 5, 15 min) after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
