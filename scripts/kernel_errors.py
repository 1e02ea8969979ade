"""Max |ours - TensorFlow| per kernel over 200 seeded random cases (shapes, strides 1/2, all
padding forms, kernels 1/3/5), for the loop twins and the vectorised kernels.

    python scripts/kernel_errors.py      # needs TensorFlow (pip install -e ".[test]")

The tests check every element against the float32 rounding bound; this prints the raw
numbers for docs/tolerances.md and the closing notes.
"""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

from mobilenet_np import ops, reference  # noqa: E402

CASES = 200


def random_case(rng: np.random.Generator, depthwise: bool):
    n, h, w = rng.integers(1, 3), rng.integers(3, 10), rng.integers(3, 10)
    k = int(rng.choice([1, 3, 5]))
    stride = int(rng.choice([1, 2]))
    choice = rng.integers(3)
    padding = ["same", "valid", tuple(tuple(rng.integers(0, 3, 2)) for _ in range(2))][choice]
    pads = ((0, 0), (0, 0)) if isinstance(padding, str) else padding
    if padding != "same" and k > min(h + sum(pads[0]), w + sum(pads[1])):
        padding = "same"  # the kernel must fit in the padded input
    c = int(rng.integers(1, 7))
    x = rng.uniform(-1, 1, (n, h, w, c)).astype(np.float32)
    shape = (k, k, c, int(rng.choice([1, 2]))) if depthwise else (k, k, c, int(rng.integers(1, 7)))
    return x, rng.standard_normal(shape).astype(np.float32), stride, padding


def tf_padding(padding):
    return padding.upper() if isinstance(padding, str) else [[0, 0], *map(list, padding), [0, 0]]


def main() -> None:
    rng = np.random.default_rng(2026)
    worst = {name: 0.0 for name in ("conv2d vectorised", "conv2d loop", "depthwise vectorised",
                                     "depthwise loop", "pointwise vectorised", "pointwise loop")}
    for _ in range(CASES):
        x, kernel, stride, padding = random_case(rng, depthwise=False)
        expected = tf.nn.conv2d(x, kernel, stride, tf_padding(padding)).numpy()
        for name, module in (("conv2d vectorised", ops), ("conv2d loop", reference)):
            got = module.conv2d(x, kernel, stride=stride, padding=padding)
            worst[name] = max(worst[name], float(np.abs(got - expected).max()))
        x, kernel, stride, padding = random_case(rng, depthwise=True)
        expected = tf.nn.depthwise_conv2d(x, kernel, [1, stride, stride, 1],
                                          tf_padding(padding)).numpy()
        for name, module in (("depthwise vectorised", ops), ("depthwise loop", reference)):
            got = module.depthwise_conv2d(x, kernel, stride=stride, padding=padding)
            worst[name] = max(worst[name], float(np.abs(got - expected).max()))
        matrix = rng.standard_normal((x.shape[3], 5)).astype(np.float32)
        expected = tf.nn.conv2d(x, matrix[None, None], 1, "VALID").numpy()
        for name, module in (("pointwise vectorised", ops), ("pointwise loop", reference)):
            got = module.pointwise_conv2d(x, matrix)
            worst[name] = max(worst[name], float(np.abs(got - expected).max()))
    print(f"max |ours - tf.nn| over {CASES} seeded cases per kernel (inputs in [-1, 1], "
          f"kernels N(0, 1)):")
    for name, error in worst.items():
        print(f"  {name:<16} {error:.2e}")


if __name__ == "__main__":
    main()
