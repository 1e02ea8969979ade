"""The .tflite files of tests/test_tflite_files.py and scripts/tflite_files_report.py: Google's
real files (``../shared/real-tflite``), the ones TFLite's converter writes, and the test's
own preprocessing (what TFLite's apps feed each kind of input).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from helpers import photos
from helpers.data import ROOT

REAL = Path(os.environ.get("MOBILENET_NP_REAL_TFLITE", ROOT.parent / "shared" / "real-tflite"))
UINT8_FILE, PTQ_FILE, FLOAT_FILE = ("mobilenet_v1_0.25_128_quant.tflite",
                                    "tf2_mobilenet_v2_1.0_224_ptq.tflite",
                                    "mobilenet_v1_0.25_224_float.tflite")
REAL_FILES = (UINT8_FILE, PTQ_FILE, FLOAT_FILE)


def real_labels() -> list[str]:
    """The 1001 labels Google's files use (line 0 background), from the shared folder."""
    return (REAL / "imagenet_labels_1001.txt").read_text().splitlines()


def gold_input(model, pixels: np.ndarray) -> np.ndarray:
    """The test's own preprocessing, as TFLite's apps do it: 8-bit pixels as they are for a
    uint8 input, pixels / 127.5 - 1 for a float one (the MobileNet convention)."""
    if model.input.dtype == np.uint8:
        return pixels.astype(np.uint8)
    return (pixels / np.float32(127.5) - np.float32(1.0)).astype(np.float32)


def sample_pixels(size: int) -> np.ndarray:
    """The sample photos, and one seeded noise image, as 0-255 pixels (3, size, size, 3)."""
    noise = np.random.default_rng(7).integers(0, 256, (1, size, size, 3)).astype(np.float32)
    return np.concatenate([photos.whole(size), noise])


def run_gold(gold, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor TFLite's interpreter holds after running ``x``, by name."""
    gold.set_tensor(gold.get_input_details()[0]["index"], x)
    gold.invoke()
    return {d["name"]: gold.get_tensor(d["index"]) for d in gold.get_tensor_details()
            if d["name"]}


def uint8_graph_file(tf, seed: int) -> bytes:
    """A uint8 file as TF1's quantization-aware flow wrote them (Google's hosted models): a TF1
    graph with fake-quant ranges, converted with ``inference_type=tf.uint8``. Every uint8 op
    MobileNets use: CONV_2D (ReLU6, stride 2, 1x1), DEPTHWISE_CONV_2D, ADD, AVERAGE_POOL_2D,
    MEAN, FULLY_CONNECTED, SOFTMAX, on 24x24x3, with seeded weights."""
    tf1, rng = tf.compat.v1, np.random.default_rng(seed)
    fake_quant = tf.quantization.fake_quant_with_min_max_args

    def weights(*shape):
        return tf.constant(rng.normal(0, 0.3, shape).astype(np.float32))

    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, (1, 24, 24, 3), name="input")
        y = fake_quant(tf.nn.relu6(tf.nn.conv2d(x, weights(3, 3, 3, 24), 2, "SAME") + weights(24)), 0, 6)
        z = fake_quant(tf.nn.relu6(tf.nn.depthwise_conv2d(y, weights(3, 3, 24, 1), [1] * 4, "SAME")), 0, 6)
        total = fake_quant(z + y, 0, 12)
        t = fake_quant(tf.nn.conv2d(total, weights(1, 1, 24, 16), 1, "VALID"), -6, 6)
        pooled = fake_quant(tf.nn.avg_pool2d(t, 3, 2, "SAME"), -6, 6)
        mean = fake_quant(tf.reduce_mean(pooled, axis=[1, 2]), -6, 6)
        logits = fake_quant(tf.matmul(mean, weights(16, 10)) + weights(10), -8, 8)
        out = tf.nn.softmax(logits, name="out")
        with tf1.Session(graph=graph) as session:
            converter = tf1.lite.TFLiteConverter.from_session(session, [x], [out])
            converter.inference_type = tf.uint8
            converter.quantized_input_stats = {"input": (128.0, 127.5)}  # (mean, std): pixels
            return converter.convert()


def converted_files(tf) -> dict[str, bytes]:
    """kind -> .tflite bytes from TFLite's converter, one small Keras MobileNetV2 (0.35, 96)
    with the project's calibrated random weights: int8 with uint8 wrappers, float32, float16
    weights."""
    from helpers.gold import keras_mobilenet, set_keras_weights
    from helpers.int8_cases import calibration_images, convert, float_model

    ours, arch = float_model("v2")
    keras_model = keras_mobilenet(ours.alpha, ours.input_shape[0], arch)
    set_keras_weights(keras_model, ours.layers, ours.params)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    float32 = converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return {"uint8 wrappers": convert(tf, keras_model, calibration_images("v2"), tf.uint8),
            "float32": float32, "float16 weights": converter.convert()}


def ops_model_files(tf) -> dict[str, bytes]:
    """int8 and float32 files of a small Keras model made of the ops MobileNet files use
    around the network: an NCHW input (TRANSPOSE), MAX_POOL_2D (VALID and SAME),
    CONCATENATION, SUB of inputs on different scales, MUL by a constant; seeded weights."""
    import keras

    layers, rng = keras.layers, np.random.default_rng(5)
    keras.utils.set_random_seed(5)
    x = keras.Input((3, 20, 20))  # NCHW, as PyTorch-exported models take it
    nhwc = layers.Permute((2, 3, 1))(x)
    a = layers.MaxPooling2D(2)(layers.Conv2D(8, 3, padding="same", activation="relu")(nhwc))
    b = layers.MaxPooling2D(3, strides=2, padding="same")(layers.Conv2D(8, 3, padding="same")(nhwc))
    both = layers.Concatenate()([a, b])
    difference = layers.Subtract()([layers.Conv2D(8, 1)(both), layers.Rescaling(3.0)(b)])
    pooled = layers.GlobalAveragePooling2D()(layers.Concatenate()([both, difference]))
    model = keras.Model(x, layers.Dense(10, activation="softmax")(pooled))

    def representative():
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1, 3, 20, 20)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    float32 = converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return {"int8": converter.convert(), "float32": float32}
