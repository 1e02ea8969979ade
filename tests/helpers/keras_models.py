"""Fine-tuned and hand-built MobileNets written by Keras itself, for test_keras_graph.py.

    python keras_models.py --keras 2|3 INPUTS FOLDER

``--keras 2`` imports tf_keras, ``--keras 3`` keras (never both in one process). Each model of
``MODELS`` is built, given trained-looking weights (He-normal kernels, random gamma/beta and
biases, batch-norm statistics measured on the input, layer after layer: never Keras's
degenerate init), saved in every format of the generation and run by Keras on the
test's input ``INPUTS/<model>.npy``: ``FOLDER/<model>/{model.h5, model.keras, predict.npy,
logits.npy}``.
``logits.npy`` is the model's output with its last activation switched to linear. The models
of ``QUANTIZED`` are also converted by TFLite's converter (Keras 3 only), full int8 with
``INPUTS/calibration.npy`` as the representative dataset: ``model_int8.tflite``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

# name -> (what it is, input shape, input range), read by the test too; the builders are below
MODELS = {
    "v1_functional": ("keras.applications MobileNet 0.25 in a Functional model, Rescaling in "
                      "front, GAP + Dropout + Dense(5, softmax)", (96, 96, 3), (0, 255)),
    "v2_sequential": ("MobileNetV2 0.35 in a Sequential, GAP + Dense(2) logits", (96, 96, 3),
                      (-1, 1)),
    "v3small_sigmoid": ("MobileNetV3Small 0.75 (own Rescaling) on 96x128 in a Functional model, "
                        "GAP + Dropout + Dense(1, sigmoid)", (96, 128, 3), (0, 255)),
    "v3large_sequential": ("MobileNetV3Large 0.75 minimalistic in a Sequential, GAP + "
                           "Dense(1000, softmax)", (96, 96, 3), (0, 255)),
    "v1_layers_gray": ("a V1 built layer by layer, default names, 1-channel 64x80 input, "
                       "GAP + Dense(3, softmax)", (64, 80, 1), (-1, 1)),
    "v2_layers": ("a V2 built layer by layer with residual Adds, default names, Rescaling, "
                  "Flatten + Dense(2, softmax)", (64, 64, 3), (0, 255)),
    "zoo_mixed": ("Normalization (adapted), SeparableConv2D with its activation, MaxPooling2D "
                  "and AveragePooling2D with 'same' padding, Flatten + Dense(4, softmax), on "
                  "40x56", (40, 56, 3), (0, 255)),
    "stock_v1": ("keras.applications MobileNet 0.25 itself (the stock path)", (96, 96, 3),
                 (-1, 1)),
}


QUANTIZED = ("v1_functional",)  # a fine-tuned backbone with Rescaling in front, as tutorials


def build(keras, name: str, x: np.ndarray):
    """The Keras model called ``name`` (``x``: what a Normalization adapts to)."""
    L, apps = keras.layers, keras.applications
    _, shape, _ = MODELS[name]
    if name == "v1_functional":
        inputs = keras.Input(shape)
        x = L.Rescaling(1 / 127.5, offset=-1)(inputs)
        x = apps.MobileNet(include_top=False, weights=None, input_shape=shape, alpha=0.25)(x)
        x = L.Dropout(0.2)(L.GlobalAveragePooling2D()(x))
        return keras.Model(inputs, L.Dense(5, activation="softmax")(x))
    if name == "v2_sequential":
        base = apps.MobileNetV2(include_top=False, weights=None, input_shape=shape, alpha=0.35)
        return keras.Sequential([keras.Input(shape), base, L.GlobalAveragePooling2D(),
                                 L.Dense(2)])
    if name == "v3small_sigmoid":
        inputs = keras.Input(shape)
        x = apps.MobileNetV3Small(include_top=False, weights=None, input_shape=shape,
                                  alpha=0.75)(inputs)
        x = L.Dropout(0.2)(L.GlobalAveragePooling2D()(x))
        return keras.Model(inputs, L.Dense(1, activation="sigmoid")(x))
    if name == "v3large_sequential":
        base = apps.MobileNetV3Large(include_top=False, weights=None, input_shape=shape,
                                     alpha=0.75, minimalistic=True)
        return keras.Sequential([keras.Input(shape), base, L.GlobalAveragePooling2D(),
                                 L.Dense(1000, activation="softmax")])
    if name == "stock_v1":
        return apps.MobileNet(weights=None, input_shape=shape, alpha=0.25, classes=10)
    inputs = keras.Input(shape)
    if name == "zoo_mixed":
        norm = L.Normalization()
        norm.adapt(x)
        h = L.SeparableConv2D(16, 3, 2, padding="same", activation="relu")(norm(inputs))
        h = L.MaxPooling2D(2, padding="same")(L.BatchNormalization()(h))
        h = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same")(h)))
        h = L.AveragePooling2D(3, strides=2, padding="same")(h)
        return keras.Model(inputs, L.Dense(4, activation="softmax")(L.Flatten()(h)))
    if name == "v1_layers_gray":
        x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(8, 3, 2, padding="same",
                                                         use_bias=False)(inputs)))
        for filters, stride in ((16, 1), (32, 2), (32, 1), (64, 2)):
            x = L.ReLU(6.0)(L.BatchNormalization()(L.DepthwiseConv2D(3, stride, padding="same",
                                                                      use_bias=False)(x)))
            x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(filters, 1, use_bias=False)(x)))
        x = L.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, L.Dense(3, activation="softmax")(x))
    x = L.Rescaling(1 / 255.0)(inputs)
    x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(16, 3, 2, padding="same", use_bias=False)(x)))
    for expand, filters, stride in ((4, 16, 1), (4, 24, 2), (4, 24, 1)):
        shortcut = x
        h = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(x.shape[-1] * expand, 1,
                                                         use_bias=False)(x)))
        if stride == 2:
            h = L.ZeroPadding2D(((0, 1), (0, 1)))(h)
        h = L.ReLU(6.0)(L.BatchNormalization()(L.DepthwiseConv2D(
            3, stride, padding="valid" if stride == 2 else "same", use_bias=False)(h)))
        h = L.BatchNormalization()(L.Conv2D(filters, 1, use_bias=False)(h))
        x = L.Add()([shortcut, h]) if stride == 1 and shortcut.shape[-1] == filters else h
    x = L.Flatten()(L.GlobalAveragePooling2D(keepdims=True)(x))
    return keras.Model(inputs, L.Dense(2, activation="softmax")(L.Dropout(0.1)(x)))


def all_layers(model):
    """Every layer with weights, nested models opened, in order."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from all_layers(layer)
        elif layer.weights:
            yield layer


def randomise(keras, model, x: np.ndarray, rng: np.random.Generator) -> None:
    """Trained-looking weights: He-normal kernels, random gamma, beta and biases, and every
    batch norm calibrated in order on x, as ``random_init.calibrate_batch_norm`` does: its
    mean random, its variance that of its input around that mean (so each output has the size
    of gamma). A batch norm runs in inference mode while ``trainable`` is False: each in turn
    is made trainable and measures its input in one training-mode call with momentum 0."""
    norms = []
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.Normalization):
            continue  # its mean and variance are x's (adapted)
        values = []
        for weight in layer.weights:
            name, shape = weight.name.split("/")[-1].split(":")[0], tuple(weight.shape)
            if "kernel" in name:
                fan_in = np.prod(shape[:2]) if "depthwise" in name else np.prod(shape[:-1])
                values.append(rng.normal(0, np.sqrt(2 / fan_in), shape))
            elif name == "gamma":
                values.append(rng.uniform(0.5, 1.5, shape))
            elif name == "moving_variance":
                values.append(np.ones(shape))
            else:
                values.append(rng.normal(0, 0.5, shape))
        layer.set_weights([v.astype(np.float32) for v in values])
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum, layer.trainable = 0.0, False
            norms.append(layer)
    for layer in norms:
        layer.trainable = True
        model(x, training=True)  # this one measures its input; the others run as at inference
        layer.trainable = False
        gamma, beta, mean, variance = layer.get_weights()
        shift = 0.5 * np.sqrt(variance) * rng.standard_normal(mean.shape)  # not centred
        layer.set_weights([gamma, beta, (mean + shift).astype(np.float32),
                           (variance + shift**2).astype(np.float32)])


def convert_int8(model, calibration: np.ndarray) -> bytes:
    """TFLite's full-integer conversion: int8 kernels, int8 input and output (``int8_cases.convert``'s
    recipe: this script runs alone in a Keras subprocess, where the test helpers don't import)."""
    import tensorflow as tf

    def representative():
        for image in calibration:
            yield [image[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def write(keras, generation: int, name: str, x: np.ndarray, folder: Path,
          calibration: np.ndarray | None = None) -> None:
    keras.backend.clear_session()
    rng = np.random.default_rng(5)
    model = build(keras, name, x)
    randomise(keras, model, x, rng)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(str(folder / "model.h5"))
    model.save(str(folder / "model.keras"))
    if calibration is not None:
        (folder / "model_int8.tflite").write_bytes(convert_int8(model, calibration))
    np.save(folder / "predict.npy", np.asarray(model.predict(x, verbose=0)))
    last = model.layers[-1]
    if hasattr(last, "activation"):  # (predict keeps its traced function: call the model)
        last.activation = keras.activations.linear
    np.save(folder / "logits.npy", np.asarray(model(x, training=False)))
    (folder / "info.json").write_text(json.dumps({"keras": generation, "model": name}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras", type=int, choices=(2, 3), required=True)
    parser.add_argument("inputs", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.keras == 2:
        import tf_keras as keras
    else:
        import keras
    for name in args.models:
        calibration = None
        if name in QUANTIZED and args.keras == 3:
            calibration = np.load(args.inputs / "calibration.npy")
        write(keras, args.keras, name, np.load(args.inputs / f"{name}.npy"), args.folder / name,
              calibration)


if __name__ == "__main__":
    main()
