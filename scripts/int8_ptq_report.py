"""Measure mnp.quantize on real pictures: agreement with the float model, bytes, and scales vs TFLite's.

    python scripts/int8_ptq_report.py          # needs TensorFlow (the test extra) and the real
                                               # V1 0.25/224 weights ($MOBILENET_NP_PRETRAINED)

MobileNet V1 0.25/224 with the real ImageNet weights. Calibration: 16 seeded crops (seed 0) of
matplotlib's two sample pictures (``tests/helpers/photos.py``); evaluation: the two pictures whole and 62
other crops (seed 1). Ranks classes by the int8 logits (the softmax's input, dequantized:
int8 probabilities tie at steps of 1/256). TFLite's converter gets the same Keras model and
the same calibration images; its model runs on TFLite's builtin kernels.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from helpers import photos  # noqa: E402  (tests/helpers/photos.py: the pictures, the agreement measure)
from helpers.data import PRETRAINED  # noqa: E402
from helpers.gold import keras_mobilenet, set_keras_weights  # noqa: E402
from helpers.int8_cases import convert, interpreter  # noqa: E402

import mobilenet_np as mnp  # noqa: E402
from mobilenet_np.int8 import tflite_summary  # noqa: E402
from mobilenet_np.int8.ops import quantize as quantize_input  # noqa: E402


def int8_logits(model, x: np.ndarray) -> np.ndarray:
    """The dequantized input of the int8 model's SOFTMAX: (N, 1000)."""
    softmax = next(op for op in model.graph.operators if op.opcode == "SOFTMAX")
    tensor = model.graph.tensors[softmax.inputs[0]]
    _, captured = model.forward(quantize_input(x, *model.input_quantization), capture=True)
    q = tensor.quantization
    return np.float32(q.scale[0]) * (captured[tensor.name].astype(np.float32) - q.zero_point[0])


def tflite_logits(tf, blob: bytes, x: np.ndarray) -> np.ndarray:
    """The same tensor from TFLite's builtin kernels running the converter's model."""
    it = interpreter(tf, blob)
    ops = it._get_ops_details()
    softmax_input = next(op["inputs"][0] for op in ops if op["op_name"] == "SOFTMAX")
    detail = next(d for d in it.get_tensor_details() if d["index"] == softmax_input)
    scale, zero = detail["quantization"]
    model = mnp.load_tflite(blob)
    rows = []
    for image in quantize_input(x, *model.input_quantization):
        it.set_tensor(it.get_input_details()[0]["index"], image[None])
        it.invoke()
        rows.append(np.float32(scale) * (it.get_tensor(softmax_input).astype(np.float32) - zero))
    return np.concatenate(rows).reshape(len(x), -1)


def main() -> None:
    import tensorflow as tf

    model = mnp.MobileNet(alpha=0.25, resolution=224, weights=str(PRETRAINED))
    calibration, evaluation = photos.calibration_and_evaluation()
    print(f"pictures: {photos.PICTURES}; calibration {len(calibration)} crops, evaluation "
          f"{len(evaluation)} images")
    ours = mnp.quantize(model, calibration)
    keras_model = keras_mobilenet(0.25, 224, "v1")
    set_keras_weights(keras_model, model.layers, model.params)
    blob = convert(tf, keras_model, calibration)
    reference = model.predict(evaluation, output="logits")
    for name, scores in (("mnp.quantize", int8_logits(ours, evaluation)),
                         ("TFLite converter", tflite_logits(tf, blob, evaluation))):
        result = photos.agreement(reference, scores)
        print(f"{name:>16} vs float: top-1 {result['top1']:.1%}, top-5 overlap {result['top5']:.1%}, "
              f"float top-1 in int8 top-5 {result['top1_in_top5']:.1%}")
    between = photos.agreement(tflite_logits(tf, blob, evaluation), int8_logits(ours, evaluation))
    print(f"mnp.quantize vs TFLite int8: top-1 {between['top1']:.1%}, top-5 overlap {between['top5']:.1%}")
    summary = tflite_summary(ours)
    params = sum(int(np.prod(v.shape)) for v in model.params.values())
    ratio = summary["float32_bytes"] / summary["weight_bytes"]
    print(f"weights: {summary['weight_bytes']:,} B int8 (kernels + int32 biases + float32 scales) vs "
          f"{summary['float32_bytes']:,} B float32 BN-folded ({ratio:.2f}x); "
          f"the Keras file's {params:,} float32 params: {4 * params:,} B")


if __name__ == "__main__":
    main()
