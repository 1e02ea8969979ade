"""int8 MobileNets vs TensorFlow Lite's builtin kernels: the output and every tensor, bit for bit.

Gold model: ``tf.lite.Interpreter`` with ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (TFLite's own
kernels, no XNNPACK) and ``experimental_preserve_all_tensors`` so that every intermediate
tensor can be read back. Models are Keras MobileNets converted once per session with a
representative dataset to full int8 (int8 input and output). V2/V3 get the project's
calibrated random weights (Keras's own initialisation makes every int8 output -128, a test
that could not fail); V1 0.25/224 gets the real ImageNet weights, on a real photo. The
models and their calibration sets: helpers/int8_cases.py; the session fixture: conftest.int8_models.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.int8_cases import RANDOM_MODELS, interpreter, pixels_as_input, quantize_by_formula, to_pixels

import mobilenet_np as mnp
from mobilenet_np.int8 import load_tflite

NAMES = ["v1-real", *RANDOM_MODELS]


@pytest.mark.parametrize("name", NAMES)
def test_every_tensor_equals_tflite_builtin_kernels(tf, int8_models, name) -> None:
    blob, tests = int8_models(name)
    model, gold = load_tflite(blob), interpreter(tf, blob)
    details = {d["name"]: d["index"] for d in gold.get_tensor_details()}
    scale, zero = model.input_quantization
    batch = quantize_by_formula(tests, scale, zero)  # (N, H, W, 3) int8
    ours_batch = model.run_quantized(batch)
    for q, ours_single in zip(batch, ours_batch, strict=True):
        gold.set_tensor(gold.get_input_details()[0]["index"], q[None])
        gold.invoke()
        out, tensors = model.forward(q[None], capture=True)
        compared = 0
        for tensor_name, value in tensors.items():
            expected = gold.get_tensor(details[tensor_name])
            assert value.dtype == expected.dtype and value.shape == expected.shape, tensor_name
            different = value != expected
            assert not different.any(), (
                f"{name}: {tensor_name}: {different.sum()} of {value.size} values differ, by up to "
                f"{np.abs(value.astype(np.int64) - expected).max()} LSB")
            compared += 1
        assert compared == len(model.graph.operators) + 1  # every op's output and the input
        assert np.array_equal(out[0], ours_single)  # a batch gives each image's answer
        assert np.array_equal(out, gold.get_tensor(gold.get_output_details()[0]["index"]))
    print(f"{name}: {len(tests)} images, {compared} tensors each, all bit-exact")


@pytest.mark.parametrize("name", NAMES)
def test_outputs_are_not_degenerate(int8_models, name) -> None:
    """The comparison above can fail only if the numbers carry information: check they do."""
    blob, tests = int8_models(name)
    model = load_tflite(blob)
    out, tensors = model.forward(quantize_by_formula(tests[:1], *model.input_quantization), capture=True)
    softmax = next(op for op in model.graph.operators if op.opcode == "SOFTMAX")
    logits = tensors[model.graph.tensors[softmax.inputs[0]].name]
    assert len(np.unique(logits)) >= 20, "logits collapsed to a few values"
    assert not np.all(out == -128) and len(np.unique(out)) >= 2
    probabilities = model.predict(to_pixels(tests, name.startswith("v3")))  # (N, 1000) floats
    assert probabilities.shape == (len(tests), 1000)
    assert not np.array_equal(probabilities[0], probabilities[1])  # images are told apart


def test_real_weights_int8_agree_with_float_on_the_photo(int8_models) -> None:
    blob, tests = int8_models("v1-real")
    probabilities = load_tflite(blob).predict(to_pixels(tests[:1], False))[0]
    top5 = [label for _, label, _ in mnp.decode_predictions(probabilities[None], top=5)[0]]
    print(f"int8 top-5 on grace_hopper.jpg: {top5}, top-1 p = {probabilities.max():.3f}")
    assert top5[0] in ("bow_tie", "military_uniform")  # the float model's top two (README)
    assert probabilities.max() > 0.2


@pytest.mark.parametrize("name", NAMES)
def test_predict_equals_tflite_on_pixels(tf, int8_models, name) -> None:
    """predict takes 0-255 pixels: scaled to the model's range, quantized, run, dequantized."""
    blob, tests = int8_models(name)
    model, gold = load_tflite(blob), interpreter(tf, blob)
    scale, zero = model.output_quantization
    takes_pixels = name.startswith("v3")  # V3 rescales pixels itself
    assert model.takes_pixels == takes_pixels
    pixels = to_pixels(tests[:1], takes_pixels)
    gold.set_tensor(gold.get_input_details()[0]["index"],
                    quantize_by_formula(pixels_as_input(pixels, takes_pixels), *model.input_quantization))
    gold.invoke()
    expected = np.float32(scale) * (gold.get_tensor(gold.get_output_details()[0]["index"]).astype(np.float32)
                                    - np.float32(zero))
    assert np.array_equal(model.predict(pixels), expected)


@pytest.mark.parametrize("name", NAMES)
def test_reader_agrees_with_tflite_tensor_details(tf, int8_models, name) -> None:
    blob, _ = int8_models(name)
    graph, gold = load_tflite(blob).graph, interpreter(tf, blob)
    details = [d for d in gold.get_tensor_details() if d["index"] < len(graph.tensors)]
    assert len(details) == len(graph.tensors)  # TFLite appends its scratch tensors after the file's
    for detail in details:
        tensor = graph.tensors[detail["index"]]
        assert tensor.name == detail["name"]
        assert tensor.shape == tuple(detail["shape"]) and np.dtype(tensor.dtype) == detail["dtype"]
        q = detail["quantization_parameters"]
        if len(q["scales"]):
            assert np.array_equal(tensor.quantization.scale, q["scales"])
            assert np.array_equal(tensor.quantization.zero_point, q["zero_points"])
            assert tensor.quantization.axis == q["quantized_dimension"]
        if tensor.data is not None:
            assert np.array_equal(tensor.data, gold.get_tensor(detail["index"]))
    ops = gold._get_ops_details()  # TFLite's own list: op names, inputs, outputs
    assert [op["op_name"] for op in ops] == [op.opcode for op in graph.operators]
    assert [list(op["outputs"]) for op in ops] == [list(op.outputs) for op in graph.operators]
