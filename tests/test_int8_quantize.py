"""``mnp.quantize`` (our own post-training quantization) vs TFLite's converter, and vs the float model.

Gold: TFLite's converter, given the same Keras model (our weights copied in) and the same
calibration images, and its model run on TFLite's builtin kernels. V1 0.25/224 has the real
ImageNet weights and calibrates on crops of real pictures (``photos.py``); V2 and V3-Small get
the project's calibrated random weights (Keras's own initialisation makes int8 outputs -128).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import photos
from helpers.bounds import rounding_bound
from helpers.int8_cases import (
    calibration_images,
    float_model,
    interpreter,
    pixels_as_input,
    quantize_by_formula,
    to_pixels,
)
from PIL import Image

import mobilenet_np as mnp
from mobilenet_np import ops
from mobilenet_np.cost import network_cost
from mobilenet_np.int8 import ops as int8_ops
from mobilenet_np.int8 import tflite_summary, tflite_summary_table
from mobilenet_np.int8.calibrate import affine_parameters
from mobilenet_np.int8.quantize import calibrate
from mobilenet_np.int8.tflite_file import read_tflite
from mobilenet_np.kinds import BN_WEIGHTS
from mobilenet_np.plan import fold_batch_norm

# Ops that carry quantized outputs in both graphs, in the same order (the converter adds shape
# arithmetic around RESHAPE, which we do not need).
MAIN_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "MEAN", "HARD_SWISH",
            "SOFTMAX")
FLOAT32_ULP = 2.0**-23  # relative spacing of float32 numbers (upper bound)
# Activation ranges are min/max of float32 activations that TFLite's float kernels and our NumPy
# compute in different orders: the project's whole-network Keras rule bounds such differences
# by 2e-5 relative (test_model_parity.py), so a range end, and the scale, move at most that.
ACTIVATION_RELATIVE = 2e-5
# Weight scales are max|w|/127 of BN-folded weights: TF folds in float32 (rsqrt, x gamma,
# x kernel: <= 4 ulps with rsqrt's), we fold in float64 and round once (0.5 ulp), and each
# side divides by 127 in float32 (0.5 ulp): 8 ulps covers it.
WEIGHT_RELATIVE = 8 * FLOAT32_ULP
MODELS = ["v1-real", "v2", "v3-small"]


@pytest.fixture(scope="module")
def models(int8_models, request):
    """name -> (our float Network, its calibration images, the converter's .tflite bytes)."""
    def get(name: str):
        path = request.getfixturevalue("pretrained_path") if name == "v1-real" else None
        return float_model(name, path)[0], calibration_images(name), int8_models(name)[0]
    return get


def _aligned(ours, theirs) -> list[tuple]:
    a = [op for op in ours.operators if op.opcode in MAIN_OPS]
    b = [op for op in theirs.operators if op.opcode in MAIN_OPS]
    assert [op.opcode for op in a] == [op.opcode for op in b]
    return list(zip(a, b, strict=True))


def _written_in_place(graph, op) -> int | None:
    """The ADD this op's output feeds as its only reader (TFLite may write the sum over it)."""
    readers = [other for other in graph.operators if op.outputs[0] in other.inputs]
    if len(readers) == 1 and readers[0].opcode == "ADD":
        return readers[0].index
    return None


def _relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


@pytest.mark.parametrize("name", MODELS)
def test_scales_agree_with_tflite_converter(models, name) -> None:
    """Per-tensor activation and per-channel weight and bias scales vs the converter's.

    One known difference, modelled rather than tolerated: TFLite's calibrator logs an op's
    inputs again *after* the op ran (calibrator.cc, LoggingEval), and an ADD may write its sum
    into an input nobody else reads. That input's recorded range is then the union of its own
    and the sum's: the residual projections, and V3's Rescaling product.
    """
    model, calibration, blob = models(name)
    ours, theirs = mnp.quantize(model, calibration).graph, read_tflite(blob)
    ranges = calibrate(model, calibration).ranges
    worst = {"activation": 0.0, "weight": 0.0, "bias": 0.0}
    changed_weights, weights = 0, 0
    for a, b in _aligned(ours, theirs):
        out_a, out_b = ours.tensors[a.outputs[0]], theirs.tensors[b.outputs[0]]
        scale, zero_point = out_a.quantization.scale[0], int(out_a.quantization.zero_point[0])
        add = _written_in_place(ours, a)
        if add is not None:  # expect TFLite's union range
            lo, hi = zip(ranges[out_a.name], ranges[ours.tensors[ours.operators[add].outputs[0]].name],
                         strict=True)
            scale, zero_point = affine_parameters(min(lo), max(hi))
        relative = _relative(scale, out_b.quantization.scale[0])
        assert relative <= ACTIVATION_RELATIVE, (out_a.name, scale, out_b.quantization.scale[0])
        assert abs(zero_point - int(out_b.quantization.zero_point[0])) <= 1, out_a.name
        worst["activation"] = max(worst["activation"], relative)
        if a.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        (wa, ba), (wb, bb) = ((g.tensors[op.inputs[1]], g.tensors[op.inputs[2]])
                              for g, op in ((ours, a), (theirs, b)))
        assert wa.shape == wb.shape and wa.quantization.axis == wb.quantization.axis
        channels = wb.shape[wb.quantization.axis]
        live = np.any(np.moveaxis(wb.data, wb.quantization.axis, 0).reshape(channels, -1) != 0, axis=1)
        # A dead channel's scale was widened from its bias and input scale (fit_bias).
        bound = np.where(live, WEIGHT_RELATIVE, ACTIVATION_RELATIVE + WEIGHT_RELATIVE)
        weight_relative = np.abs(wa.quantization.scale.astype(np.float64) / wb.quantization.scale - 1)
        assert np.all(weight_relative <= bound), (wa.name, weight_relative.max())
        worst["weight"] = max(worst["weight"], float(weight_relative[live].max(initial=0)))
        # A weight whose w / scale falls within the scales' tiny difference of a .5 rounds apart.
        step = np.abs(wa.data.astype(np.int64) - wb.data)
        assert step.max() <= 1, wa.name
        changed_weights, weights = changed_weights + int(step.sum()), weights + step.size
        bias_relative = _relative(ba.quantization.scale, bb.quantization.scale)
        assert bias_relative <= ACTIVATION_RELATIVE + 2 * WEIGHT_RELATIVE, ba.name
        worst["bias"] = max(worst["bias"], bias_relative)
        bias_step = np.abs(ba.data.astype(np.int64) - bb.data)
        assert np.all(bias_step <= 1 + np.abs(bb.data) * (ACTIVATION_RELATIVE + 2 * WEIGHT_RELATIVE)), ba.name
    # Each weight's ratio moves by at most 8 ulps x 127 ~ 1.2e-4: the chance of a .5 in between.
    assert changed_weights <= max(3, 1e-3 * weights)
    print(f"{name}: max relative scale difference: activations {worst['activation']:.2g}, weights "
          f"{worst['weight']:.2g}, biases {worst['bias']:.2g}; int8 weights differing: "
          f"{changed_weights} of {weights}")


def test_every_conv_layer_is_within_its_quantization_error(models) -> None:
    """Each int8 conv op, on its own int8 input, vs the float layer on the same (dequantized) input.

    Only this op's own rounding can separate them: |y_int8 - y| <= sum |x| |w - w_q| (weight
    rounding) + |b - b_q| + 1 output step (requantization's two roundings: <= 1 LSB) + the
    float32 reference's own round-off (helpers.bounds.rounding_bound). A transposed kernel, a wrong
    channel axis or a bad scale breaks it by whole units.
    """
    model, calibration, _ = models("v1-real")
    q_model = mnp.quantize(model, calibration)
    graph = q_model.graph
    q_in = int8_ops.quantize(calibration[:1], *q_model.input_quantization)
    _, tensors = q_model.forward(q_in, capture=True)
    checked = 0
    for op in graph.operators:
        if op.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D") or graph.tensors[op.outputs[0]].shape[1] == 1:
            continue
        x, w, b, y = (graph.tensors[i] for i in (*op.inputs, op.outputs[0]))
        dequantized = {t.name: np.float64(t.quantization.scale) * (
            (tensors[t.name] if t.data is None else t.data).astype(np.float64) - t.quantization.zero_point)
            for t in (x, y)}
        w_real = w.data * w.quantization.scale.astype(np.float64).reshape(
            (-1, 1, 1, 1) if op.opcode == "CONV_2D" else (1, 1, 1, -1))
        layer = next(layer for layer in model.layers if f"{layer.name}/kernel" == w.name)
        bn = model.layers[model.layers.index(layer) + 1]
        kernel, bias = fold_batch_norm(model.params[f"{layer.name}/{next(iter(layer.weights))}"],
                                       *(model.params[f"{bn.name}/{k}"] for k in BN_WEIGHTS),
                                       depthwise=op.opcode != "CONV_2D")
        folded = (kernel.transpose(3, 0, 1, 2) if op.opcode == "CONV_2D"
                  else kernel.reshape(1, *kernel.shape[:2], -1))  # TFLite's layouts
        run, magnitude = _float_conv(op, dequantized[x.name]), np.abs(dequantized[x.name])
        expected = np.clip(run(folded) + bias, 0, 6)  # V1: every conv unit ends in ReLU6
        weight_error = run(np.abs(folded - w_real), magnitude)
        bias_error = np.abs(bias - b.data * b.quantization.scale.astype(np.float64))
        terms = int(np.prod(w.shape[1:])) if op.opcode == "CONV_2D" else w.shape[1] * w.shape[2]
        roundoff = rounding_bound(run(np.abs(folded), magnitude) + np.abs(bias), terms + 1)
        bound = weight_error + bias_error + np.float64(y.quantization.scale[0]) + roundoff
        error = np.abs(dequantized[y.name] - expected)
        assert np.all(error <= bound), (y.name, float(error.max()), float(bound.min()))
        assert np.ptp(tensors[y.name].astype(np.int64)) > 10  # the layer's output carries information
        checked += 1
    assert checked == 27  # V1: the stem and 13 depthwise-pointwise pairs


def _float_conv(op, x: np.ndarray):
    """The float op of this TFLite conv, on x (float64), for kernels in TFLite's layout."""
    o = op.options
    stride = o["stride_h"]

    def run(kernel: np.ndarray, inputs: np.ndarray = x) -> np.ndarray:
        if op.opcode == "CONV_2D":  # (Cout, kh, kw, Cin) -> (kh, kw, Cin, Cout)
            return ops.conv2d(inputs.astype(np.float32), kernel.transpose(1, 2, 3, 0).astype(np.float32),
                              stride=stride, padding=o["padding"].lower()).astype(np.float64)
        depthwise = kernel[0].reshape(*kernel.shape[1:3], -1, o["depth_multiplier"])  # (kh, kw, C, M)
        return ops.depthwise_conv2d(inputs.astype(np.float32), depthwise.astype(np.float32), stride=stride,
                                    padding=o["padding"].lower()).astype(np.float64)
    return run


def _softmax_input(graph, tensors: dict[str, np.ndarray]) -> np.ndarray:
    """The dequantized logits (the SOFTMAX's input), (N, 1000): int8 probabilities tie at 1/256."""
    softmax = next(op for op in graph.operators if op.opcode == "SOFTMAX")
    tensor = graph.tensors[softmax.inputs[0]]
    q, values = tensor.quantization, tensors[tensor.name].reshape(-1, 1000)  # (N, 1, 1, 1000) or (N, 1000)
    return np.float32(q.scale[0]) * (values.astype(np.float32) - q.zero_point[0])


def test_agreement_with_float_on_pictures_equals_tflites(tf, models) -> None:
    """Top-1 / top-5 agreement of our int8 V1 with the float model, beside TFLite's own PTQ.

    Both quantize the same folded weights with scales equal to float32 round-off (the test
    above), so the two int8 models can rank an image differently only where its two best
    int8 logits are about one step apart: we allow 2 of the N images to differ.
    """
    model, calibration, blob = models("v1-real")
    evaluation = photos.calibration_and_evaluation(n_evaluation=22)[1]  # 2 whole + 22 crops
    ours = mnp.quantize(model, calibration)
    q_in = quantize_by_formula(evaluation, *ours.input_quantization)
    ours_logits = _softmax_input(ours.graph, ours.forward(q_in, capture=True)[1])
    gold, theirs = interpreter(tf, blob), read_tflite(blob)
    rows = []
    for image in q_in:
        gold.set_tensor(gold.get_input_details()[0]["index"], image[None])
        gold.invoke()
        rows.append({t.name: gold.get_tensor(t.index) for t in theirs.tensors if t.data is None
                     and any(t.index in op.inputs for op in theirs.operators if op.opcode == "SOFTMAX")})
    tflite_logits = np.concatenate([_softmax_input(theirs, row) for row in rows])
    reference = model.predict(evaluation, output="logits")
    assert len(set(reference.argmax(axis=1))) >= 3, "the pictures all look alike to the model"
    n = len(evaluation)
    ours_vs_float, tflite_vs_float = photos.agreement(reference, ours_logits), photos.agreement(reference,
                                                                                               tflite_logits)
    between = photos.agreement(tflite_logits, ours_logits)
    print(f"{n} pictures: ours vs float {ours_vs_float}, TFLite vs float {tflite_vs_float}, "
          f"ours vs TFLite {between}")
    assert between["top1"] >= 1 - 2 / n
    for kind in ("top1", "top5"):
        assert abs(ours_vs_float[kind] - tflite_vs_float[kind]) <= 2 / n, kind


@pytest.mark.parametrize("name", MODELS)
def test_summary_counts_equal_the_converters_file_and_cost_py(models, name) -> None:
    """Bytes and MACs of our int8 graph vs the converter's file (same shapes) and cost.py's count."""
    model, calibration, blob = models(name)
    ours, theirs = tflite_summary(mnp.quantize(model, calibration)), tflite_summary(blob)
    assert ours["total_macs"] == theirs["total_macs"] == network_cost(model.layers)["total_macs"]
    assert (ours["weight_bytes"], ours["float32_bytes"]) == (theirs["weight_bytes"], theirs["float32_bytes"])
    assert 3.5 < ours["float32_bytes"] / ours["weight_bytes"] < 4  # int8 kernels, int32 biases + scales
    table = tflite_summary_table(theirs).splitlines()
    assert len(table) == len(theirs["layers"]) + 7 and f"{theirs['total_macs']:,} MACs" in table[-1]
    assert table[1].startswith("input: int8 (1, ") and table[2].startswith("classes: 1000 outputs")


def test_quantized_model_runs_like_a_loaded_one(models) -> None:
    model, calibration, _ = models("v2")
    q_model = mnp.quantize(model, calibration)
    x = calibration[:2]
    out, tensors = q_model.forward(int8_ops.quantize(x, *q_model.input_quantization), capture=True)
    assert out.dtype == np.int8 and out.shape == (2, 1000)
    assert {"block_2_add", "block_16_project_BN", "out_relu", "predictions_softmax"} <= set(tensors)
    assert np.array_equal(q_model.run_quantized(int8_ops.quantize(x, *q_model.input_quantization)), out)
    pixels = to_pixels(x, False)  # predict takes 0-255 pixels, as load_tflite's models
    q_pixels = int8_ops.quantize(pixels_as_input(pixels, False), *q_model.input_quantization)
    pixel_out = q_model.forward(q_pixels)
    probabilities = q_model.predict(pixels)  # dequantized at softmax's fixed (1/256, -128)
    assert np.array_equal(probabilities, (pixel_out.astype(np.float32) + 128) / 256)
    assert len(np.unique(tensors["predictions"])) >= 20  # the logits carry information


def test_quantize_refuses_bad_input_in_one_line() -> None:
    model = mnp.MobileNet(alpha=0.25, resolution=96, weights=None)
    for images, message in ((np.zeros((0, 96, 96, 3), np.float32), "at least one calibration image"),
                            (np.zeros((2, 64, 64, 3), np.float32), "takes \\(N, 96, 96, 3\\)")):
        with pytest.raises(ValueError, match=message) as error:
            mnp.quantize(model, images)
        assert "\n" not in str(error.value)
    pooled = mnp.MobileNet(alpha=0.25, resolution=96, weights=None, include_top=False, pooling="max")
    with pytest.raises(ValueError, match="global average pooling only"):
        mnp.quantize(pooled, pooled.random_input(1))
    odd = mnp.MobileNet(alpha=0.25, resolution=50, weights=None)  # 50 -> 25: conv_dw_2 pads (0, 1)
    with pytest.raises(ValueError, match="conv_dw_2 pads .* SAME or VALID|SAME or VALID.*conv_dw_2"):
        mnp.quantize(odd, odd.random_input(1))


CHILD = """
import json, sys
for name in ("tensorflow", "tf_keras", "keras"):
    sys.modules[name] = None  # any import of them now fails
from mobilenet_np.int8 import classify_tflite
answer = classify_tflite(sys.argv[1], sys.argv[2:], top=5)
print(json.dumps({"results": [r for r in answer if "error" not in r],
                  "errors": [r["error"] for r in answer if "error" in r]}))
"""


def test_classify_tflite_runs_without_tensorflow(tf, int8_models, tmp_path) -> None:
    import json
    import subprocess
    import sys

    blob, _ = int8_models("v1-real")
    path = tmp_path / "v1_int8.tflite"
    path.write_bytes(blob)
    pictures = photos.picture_paths()
    bad = tmp_path / "not_an_image.jpg"
    bad.write_bytes(b"not an image")
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), *pictures, str(bad)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert child.returncode == 0, child.stderr
    answer = json.loads(child.stdout)
    assert len(answer["errors"]) == 1 and "not_an_image.jpg" in answer["errors"][0]
    assert [r["image"] for r in answer["results"]] == pictures
    gold = interpreter(tf, blob)
    model = mnp.load_tflite(blob)
    for picture, result in zip(pictures, answer["results"], strict=True):
        pixels = mnp.preprocess_input(mnp.load_image(picture, 224))[None]
        gold.set_tensor(gold.get_input_details()[0]["index"],
                        quantize_by_formula(pixels, *model.input_quantization))
        gold.invoke()
        output = gold.get_output_details()[0]
        scale, zero = output["quantization"]
        probs = np.float32(scale) * (gold.get_tensor(output["index"])[0].astype(np.float32) - zero)
        best = np.argsort(-probs, kind="stable")[:5]
        assert [p["index"] for p in result["predictions"]] == best.tolist()
        assert [p["probability"] for p in result["predictions"]] == probs[best].tolist()
        assert set(result["predictions"][0]) == {"index", "wnid", "label", "probability"}
    assert answer["results"][0]["predictions"][0]["label"] in ("bow_tie", "military_uniform")


def test_the_command_line_runs_tflite_files(int8_models, tmp_path, capsys) -> None:
    """``classify --tflite`` is ``classify_tflite``; ``summary --tflite`` is ``tflite_summary``;
    flags that the file already decides are refused."""
    from mobilenet_np.cli import main
    from mobilenet_np.int8 import classify_tflite, tflite_summary

    blob, tests = int8_models("v2")
    path = tmp_path / "v2_int8.tflite"
    path.write_bytes(blob)
    image = tmp_path / "picture.png"
    Image.fromarray(np.uint8(127.5 * (tests[0] + 1))).save(image)
    capsys.readouterr()  # what converting printed
    assert main(["classify", "--tflite", str(path), str(image), "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == classify_tflite(path, [str(image)]), out
    assert main(["summary", "--tflite", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(tflite_summary(path)))
    assert main(["classify", "--tflite", str(path), str(image), "--alpha", "0.5"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --tflite takes the model, weights and "
                                               "input size from the file: drop --alpha")


def test_files_the_int8_runtime_does_not_run_are_one_line(tf, tmp_path, capsys) -> None:
    """uint8 or float in/out around an int8 body now runs (tests/test_tflite_files.py checks it
    against TFLite), and so does a dynamic-range file (int8 weights, float activations:
    tests/test_tflite_hybrid.py); an op that cannot be prepared names itself."""
    from helpers.gold import keras_mobilenet, set_keras_weights
    from helpers.int8_cases import convert as convert_keras

    from mobilenet_np.cli import main

    ours = mnp.MobileNet(alpha=0.25, resolution=96, weights=None, seed=5)
    keras_model = keras_mobilenet(0.25, 96)
    set_keras_weights(keras_model, ours.layers, ours.params)
    calibration = ours.random_input(4)
    image = tmp_path / "picture.png"
    Image.fromarray(np.full((96, 96, 3), 100, np.uint8)).save(image)
    for io_type in (tf.uint8, tf.float32):
        path = tmp_path / f"{io_type.name}.tflite"
        path.write_bytes(convert_keras(tf, keras_model, calibration, io_type))
        assert main(["classify", "--tflite", str(path), str(image)]) == 0
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: dynamic range
    path = tmp_path / "dynamic.tflite"
    path.write_bytes(converter.convert())
    assert main(["classify", "--tflite", str(path), str(image)]) == 0  # tests/test_tflite_hybrid.py
    blob = bytearray(convert_keras(tf, keras_model, calibration))
    model = mnp.load_tflite(bytes(blob))
    conv = next(op for op in model.graph.operators if op.opcode == "CONV_2D")
    model.graph.tensors[conv.inputs[1]].quantization = None  # as a damaged file reads
    with pytest.raises(ValueError, match=f"op {conv.index} \\(CONV_2D\\) cannot be prepared"):
        mnp.int8.TFLiteModel(model.graph, "damaged.tflite")
