"""The .tflite files of tests/test_tflite_files.py and scripts/tflite_files_report.py: Google's
real files (``../shared/real-tflite``), the ones TFLite's converter writes, and the test's
own preprocessing (what TFLite's apps feed each kind of input).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from helpers import photos
from helpers.data import ROOT
from helpers.int8_cases import convert

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


@functools.cache
def uint8_v3_ops_file(tf) -> bytes:
    """A TF1-style uint8 file (fake-quant ranges, ``inference_type=tf.uint8``) of the uint8 ops
    MobileNetV3's hosted files add: MUL, LOGISTIC, MEAN with keep_dims (squeeze-excite),
    CONCATENATION of inputs on other scales, QUANTIZE uint8 -> uint8; the converter leaves
    the hard-swish and the head in float (DEQUANTIZE, float MUL, MEAN, FULLY_CONNECTED)."""
    tf1, rng = tf.compat.v1, np.random.default_rng(0)
    fake_quant = tf.quantization.fake_quant_with_min_max_args

    def weights(*shape):
        return tf.constant(rng.normal(0, 0.3, shape).astype(np.float32))

    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, (1, 16, 16, 3), name="input")
        y = fake_quant(tf.nn.conv2d(x, weights(3, 3, 3, 16), 2, "SAME") + weights(16), -6, 6)
        swish = fake_quant(y * fake_quant(tf.nn.relu6(y + 3), 0, 6) / 6, -1, 6)
        # (-1.3, 3): the MEAN's zero-point bias 58.6, where truncating and rounding differ
        mean = fake_quant(tf.reduce_mean(swish, axis=[1, 2], keepdims=True), -1.3, 3)
        squeeze = tf.nn.relu(tf.nn.conv2d(mean, weights(1, 1, 16, 8), 1, "VALID") + weights(8))
        squeeze = fake_quant(squeeze, 0, 4)
        excite = fake_quant(tf.nn.conv2d(squeeze, weights(1, 1, 8, 16), 1, "VALID") + weights(16), -6, 6)
        scaled = fake_quant(swish * fake_quant(tf.nn.sigmoid(excite), 0, 1), -1, 6)
        both = fake_quant(tf.concat([scaled, fake_quant(y, -6, 6)], axis=3), -6, 6)
        logits = fake_quant(tf.reduce_mean(both, axis=[1, 2]) @ weights(32, 5), -8, 8)
        out = tf.nn.softmax(logits, name="out")
        with tf1.Session(graph=graph) as session:
            converter = tf1.lite.TFLiteConverter.from_session(session, [x], [out])
            converter.inference_type = tf.uint8
            converter.quantized_input_stats = {"input": (128.0, 127.5)}
            return converter.convert()


@functools.cache
def converted_files(tf) -> dict[str, bytes]:
    """kind -> .tflite bytes from TFLite's converter, one small Keras MobileNetV2 (0.35, 96)
    with the project's calibrated random weights: int8 with uint8 wrappers, float32, float16
    weights, dynamic range (int8 weights, float activations). Converted once per session."""
    from helpers.gold import keras_mobilenet, set_keras_weights
    from helpers.int8_cases import calibration_images, convert, float_model

    ours, arch = float_model("v2")
    keras_model = keras_mobilenet(ours.alpha, ours.input_shape[0], arch)
    set_keras_weights(keras_model, ours.layers, ours.params)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    float32 = converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    dynamic_range = converter.convert()  # no representative dataset: int8 weights only
    converter.target_spec.supported_types = [tf.float16]
    return {"uint8 wrappers": convert(tf, keras_model, calibration_images("v2"), tf.uint8),
            "float32": float32, "float16 weights": converter.convert(), "dynamic range": dynamic_range}


@functools.cache
def dynamic_range_files(tf) -> dict[str, bytes]:
    """Dynamic-range files (``Optimize.DEFAULT`` without a representative dataset) of the
    converted V2 0.35/96 (``converted_files``), of V3-Small 0.75/96 with the project's
    calibrated random weights (5x5 depthwise, hard-swish inputs), and of a small seeded
    model converted with per-tensor weight scales (TFLite's symmetric hybrid CONV_2D path)."""
    import keras

    from helpers.gold import keras_mobilenet, set_keras_weights
    from helpers.int8_cases import float_model

    ours, arch = float_model("v3-small")
    v3 = keras_mobilenet(ours.alpha, ours.input_shape[0], arch)
    set_keras_weights(v3, ours.layers, ours.params)
    layers = keras.layers
    keras.utils.set_random_seed(11)
    x = keras.Input((12, 12, 8))
    y = layers.Conv2D(48, 3, padding="same", activation="relu6")(x)
    y = layers.Conv2D(40, 1, strides=2)(layers.DepthwiseConv2D(3, padding="same")(y))
    small = keras.Model(x, layers.Dense(30, bias_initializer="random_normal")(
        layers.GlobalAveragePooling2D()(y)))
    files = {"v2": converted_files(tf)["dynamic range"]}
    for name, model, per_tensor in (("v3-small", v3, False), ("per-tensor", small, True)):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter._experimental_disable_per_channel = per_tensor
        files[name] = converter.convert()
    return files


@functools.cache
def float_order_file(tf) -> bytes:
    """A small float32 file whose ops reach every summation path of ``int8/float_order.py`` that
    the MobileNet files do not: on a (1, 7, 7, 3) input (49 pixels, one past the 4-wide tiles),
    HARD_SWISH on 147 values (a tail of 3), 3x3 CONV_2D to 28 channels (16 + 8 + 4: the
    even/odd kernels, depth 27) and to 13 (8 + 4 + 1: the last channel), a 1x1 CONV_2D of depth
    28 to 8 channels, DEPTHWISE_CONV_2D with depth multiplier 2 and stride 2, and 1x1 convs on
    a 1x1 image (matrix-vector: depth 13 to 10 and to 11 channels, an odd last row), SOFTMAX
    on 5 rows of 17 (rows starting off Eigen's 8-float alignment, exp tails), and a
    FULLY_CONNECTED of depth 85 to 7. Seeded."""
    rng = np.random.default_rng(0)

    def weights(*shape):
        return tf.constant(rng.normal(0, 0.5, shape).astype(np.float32))

    def conv(x, kernel, stride=1):
        return tf.nn.conv2d(x, kernel, stride, "SAME") + weights(kernel.shape[-1])

    @tf.function(input_signature=[tf.TensorSpec([1, 7, 7, 3], tf.float32)])
    def model(x):
        swish = x * tf.nn.relu6(x + 3) / 6
        wide = conv(swish, weights(3, 3, 3, 28))
        depthwise = tf.nn.depthwise_conv2d(wide, weights(3, 3, 28, 2), [1, 2, 2, 1], "SAME") + weights(56)
        narrow = conv(wide, weights(1, 1, 28, 8))
        pixel = tf.reduce_mean(conv(swish, weights(3, 3, 3, 13)), axis=[1, 2], keepdims=True)  # (1, 1, 1, 13)
        parts = [narrow, depthwise, conv(pixel, weights(1, 1, 13, 10)), conv(pixel, weights(1, 1, 13, 11))]
        pooled = tf.concat([tf.reduce_mean(part, axis=[1, 2]) for part in parts], axis=1)  # (1, 85)
        rows = tf.nn.softmax(tf.reshape(pooled, [5, 17]))  # rows of 17: 4 alignments, tails
        return tf.matmul(tf.reshape(rows, [1, 85]), weights(85, 7)) + weights(7)  # an odd last row

    return tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model).convert()


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


@functools.cache
def arg_max_files(tf) -> dict[str, bytes]:
    """float32 and int8 files ending in ARG_MAX (a classifier that outputs its class index):
    MEAN, FULLY_CONNECTED, ARG_MAX on a (2, 6, 6, 3) input, seeded weights."""
    rng = np.random.default_rng(7)
    weights = tf.constant(rng.normal(size=(3, 10)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([2, 6, 6, 3], tf.float32)])
    def classes(x):
        logits = tf.matmul(tf.reduce_mean(x, axis=[1, 2]), weights)  # (2, 10)
        return tf.math.argmax(logits, axis=1, output_type=tf.int32)  # (2,)

    def representative():
        for _ in range(8):
            yield [rng.uniform(-1, 1, (2, 6, 6, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([classes.get_concrete_function()],
                                                                classes)
    float32 = converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    return {"int8": converter.convert(), "float32": float32}


@functools.cache
def float_io_int8_file(tf) -> bytes:
    """A full-int8 file with TF2's default float input and output: QUANTIZE, CONV_2D, MEAN,
    FULLY_CONNECTED (37 outputs: DEQUANTIZE's steps of 8 and a tail of 5), DEQUANTIZE;
    a seeded Keras model on 8 x 8 x 3 inputs, 16 seeded calibration images."""
    import keras

    keras.utils.set_random_seed(3)
    x = keras.Input((8, 8, 3))
    y = keras.layers.Dense(37)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(13, 3)(x)))
    calibration = np.random.default_rng(0).normal(0, 1, (16, 8, 8, 3)).astype(np.float32)
    return convert(tf, keras.Model(x, y), calibration, io_type=tf.float32)


def _metadata_buffer(mean: list[float], std: list[float], labels_name: str) -> bytes:
    """A TFLITE_METADATA FlatBuffer ("M001", ``metadata_schema.fbs``) built field by field, as
    TFLite Support's writers lay it out: the input's NormalizationOptions (mean, std) and the
    output's TENSOR_AXIS_LABELS file name. Slot numbers as ``mobilenet_np/int8/metadata.py``."""
    import flatbuffers

    b = flatbuffers.Builder(256)

    def floats(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(v)
        return b.EndVector()

    def table(fields):  # fields: [(slot, kind, value)], kind "offset" or "uint8"
        b.StartObject(max(slot for slot, _, _ in fields) + 1)
        for slot, kind, value in fields:
            (b.PrependUOffsetTRelativeSlot if kind == "offset" else b.PrependUint8Slot)(slot, value, 0)
        return b.EndObject()

    def vector(offsets):
        b.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            b.PrependUOffsetTRelative(offset)
        return b.EndVector()

    mean_offset, std_offset = floats(mean), floats(std)
    normalization = table([(0, "offset", mean_offset), (1, "offset", std_offset)])
    unit = table([(0, "uint8", 1), (1, "offset", normalization)])  # 1: NormalizationOptions
    input_tensor = table([(4, "offset", vector([unit]))])
    name = b.CreateString(labels_name)
    labels = table([(0, "offset", name), (2, "uint8", 2)])  # 2: TENSOR_AXIS_LABELS
    output_tensor = table([(6, "offset", vector([labels]))])
    subgraph = table([(2, "offset", vector([input_tensor])), (3, "offset", vector([output_tensor]))])
    b.Finish(table([(3, "offset", vector([subgraph]))]), file_identifier=b"M001")
    return bytes(b.Output())


def with_metadata(tf, blob: bytes, mean: list[float], std: list[float], labels: list[str]) -> bytes:
    """A .tflite file with TFLite model metadata added as TFLite Support's populator adds it:
    a TFLITE_METADATA buffer in the model (repacked with TensorFlow's own generated schema)
    and a zip holding the labels file appended to the end."""
    import importlib.util
    import io
    import zipfile

    import flatbuffers

    path = Path(tf.__file__).parent / "lite" / "python" / "schema_py_generated.py"
    spec = importlib.util.spec_from_file_location("tflite_schema", path)
    schema = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(schema)
    model = schema.ModelT.InitFromPackedBuf(blob, 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(_metadata_buffer(mean, std, "labels.txt"), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = "TFLITE_METADATA", len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    builder = flatbuffers.Builder(len(blob) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("labels.txt", "\n".join(labels) + "\n")
    return bytes(builder.Output()) + packed.getvalue()
