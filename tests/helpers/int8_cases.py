"""The int8 models the tests convert with TFLite, shared by every int8 test module.

Converted once per session (``int8_models`` in tests/conftest.py): conversion is the slow part
(~15-25 s per model here). V1 0.25/224 has the real ImageNet weights and calibrates on 16
seeded crops of real pictures (``photos.py``); V2/V3 get the project's calibrated random
weights (seed 3) and calibrate on six seeded images.
"""

from __future__ import annotations

import numpy as np

import mobilenet_np as mnp
from helpers import photos
from helpers.data import images

# name: (arch, alpha, resolution); small alpha/resolution keeps conversion quick.
RANDOM_MODELS = {"v2": ("v2", 0.35, 96), "v3-small": ("v3-small", 0.75, 96),
                 "v3-large": ("v3-large", 0.75, 96)}
BUILD = {"v1": mnp.MobileNet, "v2": mnp.MobileNetV2, "v3-small": mnp.MobileNetV3Small,
         "v3-large": mnp.MobileNetV3Large}


def pixel_range(arch: str) -> tuple[float, float]:
    """MobileNetV3 rescales pixels itself ([0, 255]); V1/V2 take preprocess_input's [-1, 1]."""
    return (0.0, 255.0) if arch.startswith("v3") else (-1.0, 1.0)


def convert(tf, keras_model, calibration: np.ndarray, io_type=None) -> bytes:
    """Full-integer conversion: int8 kernels only, int8 input and output (or ``io_type``)."""
    def representative():
        for image in calibration:
            yield [image[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = io_type or tf.int8
    return converter.convert()


def to_pixels(tests: np.ndarray, takes_pixels: bool) -> np.ndarray:
    """Test images as the 0-255 pixels ``TFLiteModel.predict`` takes: [-1, 1] images mapped
    back (``(x + 1) * 127.5``) and rounded to whole pixels, as photos are."""
    pixels = tests if takes_pixels else (tests + 1) * 127.5
    return np.clip(np.rint(pixels), 0, 255).astype(np.float32)


def pixels_as_input(pixels: np.ndarray, takes_pixels: bool) -> np.ndarray:
    """The real input a model sees for 0-255 pixels: themselves, or pixels / 127.5 - 1 in float32."""
    return pixels if takes_pixels else pixels / np.float32(127.5) - np.float32(1.0)


def interpreter(tf, blob: bytes, builtin: bool = True):
    """TFLite's builtin kernels (the gold model), or the default (XNNPACK-delegated) interpreter."""
    options = {"experimental_op_resolver_type":
               tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES} if builtin else {}
    it = tf.lite.Interpreter(model_content=blob, experimental_preserve_all_tensors=True, **options)
    it.allocate_tensors()
    return it


def quantize_by_formula(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """The test's own float -> int8, as TFLite's QUANTIZE kernel (test_int8_reader checks it):
    times the float32 reciprocal, ties to even (Python's round), clamped."""
    inverse = np.float32(1.0) / np.float32(scale)
    rounded = [round(float(v)) for v in (np.asarray(x, np.float32) * inverse).ravel()]
    return np.clip(np.array(rounded).reshape(np.shape(x)) + zero_point, -128, 127).astype(np.int8)




def calibration_images(name: str) -> np.ndarray:
    """The calibration set of each converted model (float, as the model takes it)."""
    if name == "v1-real":
        return photos.calibration_and_evaluation(n_evaluation=0)[0]
    arch, _, resolution = RANDOM_MODELS[name]
    return images((resolution, resolution, 3), 6, 1, *pixel_range(arch))


def float_model(name: str, pretrained_path=None):
    """Our float model behind each converted one: (Network, family name for Keras)."""
    if name == "v1-real":
        return mnp.MobileNet(alpha=0.25, resolution=224, weights=str(pretrained_path)), "v1"
    arch, alpha, resolution = RANDOM_MODELS[name]
    return BUILD[arch](alpha=alpha, resolution=resolution, weights=None, seed=3), arch
