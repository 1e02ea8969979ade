"""The .tflite reader's errors, and the ops MobileNets do not use, vs TFLite's builtin kernels.

A small Keras model, converted with float input and output, brings QUANTIZE, PAD, LOGISTIC,
AVERAGE_POOL_2D, a depth multiplier of 2, the shape ops, FULLY_CONNECTED and DEQUANTIZE.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import mobilenet_np as mnp
from mobilenet_np.int8 import load_tflite
from mobilenet_np.int8.model import TFLiteModel
from mobilenet_np.int8.tflite_file import read_tflite

OPS = ["QUANTIZE", "PAD", "CONV_2D", "LOGISTIC", "AVERAGE_POOL_2D", "DEPTHWISE_CONV_2D", "SHAPE",
       "STRIDED_SLICE", "PACK", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX", "DEQUANTIZE"]


@pytest.fixture(scope="module")
def small_model(tf) -> bytes:
    """Converted once: float in, int8 inside, float out; weights seeded N(0, 0.5)."""
    import keras

    inputs = keras.Input((12, 12, 3))
    x = keras.layers.ZeroPadding2D(((1, 2), (0, 1)))(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2)(x)
    x = keras.layers.Activation("sigmoid")(x)
    x = keras.layers.AveragePooling2D(3, strides=1, padding="same")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu6")(x)
    x = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, keras.layers.Softmax()(x))
    rng = np.random.default_rng(0)
    for weight in model.weights:
        weight.assign(rng.normal(0, 0.5, weight.shape).astype(np.float32))
    calibration = rng.uniform(-1, 1, (8, 12, 12, 3)).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calibration[i:i + 1]] for i in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def test_small_model_every_tensor_equals_tflite(tf, small_model) -> None:
    model = mnp.load_tflite(small_model)
    assert [op.opcode for op in model.graph.operators] == OPS
    gold = tf.lite.Interpreter(
        model_content=small_model, experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    gold.allocate_tensors()
    index = {d["name"]: d["index"] for d in gold.get_tensor_details()}
    rng = np.random.default_rng(3)
    scale = np.float32(model.graph.tensors[model.graph.operators[0].outputs[0]].quantization.scale[0])
    ties = (np.arange(-300, 300) + 0.5).astype(np.float32)[:432] * scale  # exact .5 ratios
    inputs = [rng.uniform(-1.2, 1.2, (1, 12, 12, 3)).astype(np.float32),  # beyond the calibrated range
              rng.uniform(-0.2, 0.2, (1, 12, 12, 3)).astype(np.float32), ties.reshape(1, 12, 12, 3)]
    for x in inputs:
        gold.set_tensor(gold.get_input_details()[0]["index"], x)
        gold.invoke()
        out, tensors = model.forward(x, capture=True)
        for name, value in tensors.items():
            expected = gold.get_tensor(index[name])
            assert value.dtype == expected.dtype and np.array_equal(value, expected), name
        assert len(np.unique(tensors[model.graph.tensors[model.graph.operators[3].outputs[0]].name])) > 20
        assert np.array_equal(out, gold.get_tensor(gold.get_output_details()[0]["index"]))


def test_unknown_op_is_named(small_model) -> None:
    graph = read_tflite(small_model)
    graph.operators[3].opcode = "TANH"
    with pytest.raises(ValueError, match=r"unsupported op\(s\) TANH"):
        TFLiteModel(graph, "small.tflite")


def test_bad_files_give_one_line_value_errors(tmp_path, small_model) -> None:
    not_tflite = tmp_path / "photo.tflite"
    not_tflite.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ValueError, match="not a .tflite file") as error:
        load_tflite(not_tflite)
    assert "\n" not in str(error.value) and "photo.tflite" in str(error.value)
    for cut in (12, 200, len(small_model) // 2):
        truncated = tmp_path / f"cut{cut}.tflite"
        truncated.write_bytes(small_model[:cut])
        with pytest.raises(ValueError, match=f"cut{cut}.tflite: (corrupt|bad)") as error:
            load_tflite(truncated)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="not a .tflite file"):
        load_tflite(b"")


def test_wrong_input_is_a_clear_error(small_model) -> None:
    model = load_tflite(small_model)
    with pytest.raises(ValueError, match=r"input must be float32 of shape \(N, 12, 12, 3\)"):
        model.run_quantized(np.zeros((1, 12, 12, 3), np.int8))


def test_missing_flatbuffers_names_the_extra(monkeypatch, small_model) -> None:
    monkeypatch.setitem(sys.modules, "flatbuffers.table", None)  # import fails as if absent
    with pytest.raises(ImportError, match=r'pip install "mobilenet-np\[tflite\]"'):
        load_tflite(small_model)
