"""The .tflite files people download, and every kind TFLite's converter still writes, vs TFLite.

Gold model: ``tf.lite.Interpreter`` with its builtin kernels (no XNNPACK) and every tensor
preserved. Files: Google's three real MobileNets in ``../shared/real-tflite`` (uint8 with
asymmetric zero points and a packed labels file; an int8 body in uint8 QUANTIZE wrappers;
float32), all 1001 classes (skipped, saying so, when that folder is absent), and files
converted here from a small Keras MobileNetV2 (0.35, 96x96) with the project's calibrated
random weights: int8 with uint8 wrappers, float32, float16 weights.

Integer tensors must be equal bit for bit. Float tensors: each float op is replayed on
TFLite's own inputs and must be within Higham's float32 bound of a sum of K products
(``helpers.bounds.rounding_bound``): the two runtimes sum the same products in another order,
which is all that may differ; a wrong tap, layout or activation is off by a whole term. The
float file's end-to-end probabilities: within ``softmax_bound`` of a logit bound
``parity_rtol``-style (2u sqrt(L K) relative, L summing layers of at most K products).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import photos
from helpers.bounds import UNIT_ROUNDOFF, rounding_bound, softmax_bound
from helpers.int8_cases import interpreter
from helpers.tflite_cases import (
    FLOAT_FILE,
    REAL,
    REAL_FILES,
    UINT8_FILE,
    arg_max_files,
    converted_files,
    float_io_int8_file,
    gold_input,
    ops_model_files,
    real_labels,
    run_gold,
    sample_pixels,
    uint8_graph_file,
    uint8_v3_ops_file,
    with_metadata,
)

import mobilenet_np as mnp
from mobilenet_np import ops as float_ops
from mobilenet_np.errors import InputError
from mobilenet_np.int8 import is_tflite, load_tflite
from mobilenet_np.int8 import ops as int8_ops
from mobilenet_np.int8 import reference as int8_reference
from mobilenet_np.int8.classify import Int8Classifier
from mobilenet_np.int8.fixedpoint import Requantize, activation_range
from mobilenet_np.int8.opnames import BUILTIN_NAMES


def real_file(name: str) -> Path:
    """A file of ../shared/real-tflite, or a skip that says where it was looked for."""
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"needs Google's real .tflite files in {REAL} (or $MOBILENET_NP_REAL_TFLITE)")
    return path


# ---- float ops: each replayed on TFLite's inputs, within Higham's bound -------------------------


def _abs_sum_and_terms(graph, op, inputs: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """The same op on |inputs| without its activation (Higham's sum of |terms|), and K."""
    x, w = np.abs(inputs[0]), np.abs(inputs[1]) if len(inputs) > 1 else None
    b = np.abs(inputs[2]) if len(inputs) > 2 else None
    o = op.options
    if op.opcode == "CONV_2D":
        out = float_ops.conv2d(x, w.transpose(1, 2, 3, 0), b, (o["stride_h"], o["stride_w"]),
                               o["padding"].lower())
        return out, int(np.prod(w.shape[1:])) + 1
    if op.opcode == "DEPTHWISE_CONV_2D":
        _, kh, kw, cm = w.shape
        out = float_ops.depthwise_conv2d(x, w.reshape(kh, kw, x.shape[-1], cm // x.shape[-1]), b,
                                         (o["stride_h"], o["stride_w"]), o["padding"].lower())
        return out, kh * kw + 1
    if op.opcode == "FULLY_CONNECTED":
        return float_ops.dense(x.reshape(-1, w.shape[1]), w.T, b), w.shape[1] + 1
    if op.opcode in ("AVERAGE_POOL_2D", "MEAN"):
        terms = x.shape[1] * x.shape[2]
        return x.mean(axis=(1, 2), keepdims=op.opcode == "AVERAGE_POOL_2D" or o["keep_dims"]), terms
    if op.opcode in ("ADD", "SUB"):
        return np.abs(inputs[0]) + np.abs(inputs[1]), 2
    if op.opcode == "MUL":
        return np.abs(inputs[0] * inputs[1]), 1
    raise AssertionError(f"no bound for {op.opcode}")


def is_hybrid(graph, op) -> bool:
    """A dynamic-range op: int8 weights on float32 activations."""
    return (op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
            and graph.tensors[op.inputs[1]].dtype == np.int8
            and graph.tensors[op.outputs[0]].dtype == np.float32)


def assert_float_ops_within_bounds(model, tensors: dict[str, np.ndarray]) -> int:
    """Replay every float op of ``model`` on TFLite's own inputs; return how many were checked."""
    graph, checked = model.graph, 0
    for op, run in model.steps:
        out = graph.tensors[op.outputs[0]]
        if out.dtype != np.float32 or op.opcode == "DEQUANTIZE" or is_hybrid(graph, op):
            continue  # hybrid ops are bit-exact: test_tflite_hybrid.py compares them exactly
        inputs = [tensors[graph.tensors[i].name] for i in op.inputs if i >= 0]
        ours, theirs = run(*inputs), tensors[out.name]
        if op.opcode in ("RESHAPE", "SQUEEZE", "PAD", "TRANSPOSE", "CONCATENATION", "MAX_POOL_2D"):
            # these move or pick values: exact
            assert np.array_equal(ours, theirs), out.name
        elif op.opcode == "HARD_SWISH":
            # x * relu6(x + 3) / 6: an add, a multiply and a scaling by 1/6 (or a division),
            # each within u of its exact result, in both runtimes: 2 * 4u relative.
            assert np.all(np.abs(ours - theirs) <= 8 * UNIT_ROUNDOFF * np.abs(theirs) + 1e-30), out.name
        elif op.opcode == "SOFTMAX":
            # p = e_i / sum e: expf within 1 ulp each side, a K-term float32 sum, one division.
            k = theirs.shape[-1]
            bound = 2 * (k * UNIT_ROUNDOFF / (1 - k * UNIT_ROUNDOFF) + 3 * UNIT_ROUNDOFF) * theirs
            assert np.all(np.abs(ours - theirs) <= bound + 1e-30), out.name
        else:
            abs_sum, terms = _abs_sum_and_terms(graph, op, inputs)
            error = np.abs(ours.astype(np.float64) - theirs)
            assert np.all(error <= rounding_bound(abs_sum, terms)), (
                f"{out.name}: off by {error.max():.3g}, above the float32 bound")
        checked += 1
    return checked


def assert_equal_to_tflite(model, gold, x: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer tensors bit for bit, float ops within their bounds; (output, tensors compared)."""
    tensors = run_gold(gold, x)
    out, ours = model.forward(x, capture=True)
    compared = 0
    for name, value in ours.items():
        if value.dtype != np.float32:
            expected = tensors[name]
            assert value.dtype == expected.dtype, name
            different = value != expected
            assert not different.any(), (
                f"{name}: {different.sum()} of {value.size} values differ, by up to "
                f"{np.abs(value.astype(np.int64) - expected).max()}")
            compared += 1
    compared += assert_float_ops_within_bounds(model, tensors)
    return out, compared


# ---- Google's real files ----------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_files_equal_tflite_on_every_tensor(tf, name) -> None:
    path = real_file(name)
    model, gold = load_tflite(path), interpreter(tf, path.read_bytes())
    assert is_tflite(path) and isinstance(mnp.load(path), type(model))
    pixels = sample_pixels(model.input.shape[1])
    for image in pixels:
        x = gold_input(model, image[None])
        assert np.array_equal(model.preprocess(image[None]), x)  # predict feeds what TFLite's apps do
        out, compared = assert_equal_to_tflite(model, gold, x)
        assert compared >= len(model.graph.operators)
        assert out.shape == (1, 1001)
    assert_not_degenerate(model, pixels[:1])


def assert_not_degenerate(model, pixels: np.ndarray) -> None:
    """The comparisons can fail only if the numbers carry information: logits (the softmax's
    input) with many distinct values, and a confident answer from ``predict``."""
    softmax = next(op for op in model.graph.operators if op.opcode == "SOFTMAX")
    _, tensors = model.forward(model.preprocess(pixels), capture=True)
    assert len(np.unique(tensors[model.graph.tensors[softmax.inputs[0]].name])) > 20
    assert model.predict(pixels).max() > 0.05


def test_float_file_output_within_its_bound(tf) -> None:
    """End to end: L = 28 summing layers of at most K = 256 products (the 0.25 V1's widest
    pointwise and classifier) give logits within 2u sqrt(L K) (1 + max |logit|) of TFLite's."""
    path = real_file(FLOAT_FILE)
    model, gold = load_tflite(path), interpreter(tf, path.read_bytes())
    logits_name = model.graph.tensors[model.graph.operators[-1].inputs[0]].name
    for image in sample_pixels(224):
        x = gold_input(model, image[None])
        tensors = run_gold(gold, x)
        out, ours = model.forward(x, capture=True)
        logit_bound = 2 * UNIT_ROUNDOFF * np.sqrt(28 * 256) * (1 + np.abs(tensors[logits_name]).max())
        assert np.abs(ours[logits_name] - tensors[logits_name]).max() <= logit_bound
        assert np.abs(out - tensors[model.output.name]).max() <= softmax_bound(out, logit_bound)


def classify_json(args: list[str], capsys) -> list[dict]:
    from mobilenet_np.cli import main

    capsys.readouterr()
    assert main(["classify", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", REAL_FILES)
def test_classify_prints_tflites_top5_with_the_right_labels(tf, name, capsys) -> None:
    """1001 outputs: output i is ImageNet class i - 1 (0 is background). The labels packed in
    the file are used when present (the uint8 and PTQ files); the float file gets ImageNet's."""
    path = real_file(name)
    model, gold = load_tflite(path), interpreter(tf, path.read_bytes())
    pictures = photos.picture_paths()
    results = classify_json(["--tflite", str(path), *pictures], capsys)
    labels, classes = real_labels(), mnp.imagenet_classes()
    for picture, result in zip(pictures, results, strict=True):
        image = mnp.load_image(picture, model.input.shape[1])[None]
        probs = run_gold(gold, gold_input(model, image))[model.output.name][0].astype(np.float64)
        best = np.argsort(-probs, kind="stable")[:5]
        assert [p["index"] for p in result["predictions"]] == best.tolist()
        for p in result["predictions"]:
            assert p["wnid"] == (classes[p["index"] - 1][0] if p["index"] else "")
            if name != FLOAT_FILE:
                assert p["label"] == labels[p["index"]]
            elif p["index"]:
                assert p["label"] == classes[p["index"] - 1][1]
    hopper = results[0]["predictions"][0]
    assert hopper["wnid"] in ("n03763968", "n04350905", "n02669723")  # uniform, suit, academic gown


def test_labels_file_names_the_classes(capsys, tmp_path) -> None:
    """--labels FILE names a file's classes; a file's own packed labels win over it."""
    picture = photos.picture_paths()[0]
    float_path = real_file(FLOAT_FILE)
    named = classify_json(["--tflite", str(float_path), picture, "--labels",
                           str(REAL / "imagenet_labels_1001.txt")], capsys)
    assert [p["label"] for p in named[0]["predictions"]] == [
        real_labels()[p["index"]] for p in named[0]["predictions"]]
    mine = tmp_path / "mine.txt"
    mine.write_text("\n".join(f"mine {i}" for i in range(1001)))
    packed = classify_json(["--tflite", str(REAL / UINT8_FILE), picture, "--labels", str(mine)], capsys)
    assert not any(p["label"].startswith("mine") for p in packed[0]["predictions"])
    short = tmp_path / "short.txt"
    short.write_text("a\nb\n")
    from mobilenet_np.cli import main

    assert main(["classify", "--tflite", str(float_path), picture, "--labels", str(short)]) == 2
    assert "2 labels, but" in capsys.readouterr().err


def test_other_class_counts_by_index_or_labels(tf, tmp_path, capsys) -> None:
    """A 10-class file is labelled ``class i``, or by --labels; its wnids are empty."""
    from PIL import Image

    path = tmp_path / "ten.tflite"
    path.write_bytes(uint8_graph_file(tf, 0))
    image = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (24, 24, 3)).astype(np.uint8)).save(image)
    by_index = classify_json(["--tflite", str(path), str(image), "--top", "3"], capsys)[0]["predictions"]
    assert [p["label"] for p in by_index] == [f"class {p['index']}" for p in by_index]
    assert {p["wnid"] for p in by_index} == {""}
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"thing {i}\n" for i in range(10)))
    named = classify_json(["--tflite", str(path), str(image), "--top", "3", "--labels", str(labels)], capsys)
    assert [p["label"] for p in named[0]["predictions"]] == [f"thing {p['index']}" for p in by_index]


def test_metadata_normalization_and_labels_file(caplog) -> None:
    """The hosted files' TFLite metadata: input normalization mean 127.5, std 127.5 (what TFLite
    Support applies to float inputs) and the output's labels file, packed in the zip; a float
    input with metadata takes (pixels - mean) / std; damaged metadata is a warning."""
    from mobilenet_np.int8 import tflite_summary
    from mobilenet_np.int8.metadata import Metadata

    model = load_tflite(real_file(UINT8_FILE))
    assert model.metadata.mean.tolist() == [127.5] and model.metadata.std.tolist() == [127.5]
    assert model.metadata.labels_file == "imagenet_labels.txt" and model.labels == real_labels()
    float_model = load_tflite(real_file(FLOAT_FILE))
    assert float_model.metadata is None and float_model.labels is None
    pixels = sample_pixels(224)[:1]
    float_model.metadata = Metadata(np.float32([0.0]), np.float32([255.0]), None)
    assert np.array_equal(float_model.preprocess(pixels), pixels / np.float32(255.0))
    assert "mean 0, std 255 (the file's metadata)" in tflite_summary(float_model)["input"]
    graph = model.graph
    graph.metadata = b"\xff\xff\x00\x00M001" + bytes(8)  # its root table lies past the end
    damaged = mnp.int8.TFLiteModel(graph, "damaged.tflite")
    assert damaged.metadata is None and "damaged.tflite: its TFLite metadata cannot be read" in caplog.text


def test_float_file_with_metadata_classifies_with_its_normalization(tf, tmp_path, capsys) -> None:
    """End to end: a float file (the converted V2 0.35/96) given TFLite metadata as TFLite
    Support writes it (normalization mean 0, std 255: not the MobileNet convention, so using it
    shows) and a packed labels file. ``classify --tflite`` prints the packed labels and
    TFLite's probabilities for ``(pixels - 0) / 255``, within the end-to-end float32 bound: L =
    53 summing layers of at most K = 1280 products, logits within 2u sqrt(L K) (1 + max |z|)."""
    from mobilenet_np.int8 import tflite_summary

    blob = with_metadata(tf, converted_files(tf)["float32"], [0.0], [255.0],
                         [f"thing {i}" for i in range(1000)])
    path = tmp_path / "with_metadata.tflite"
    path.write_bytes(blob)
    model, gold = load_tflite(path), interpreter(tf, blob)
    assert "mean 0, std 255 (the file's metadata)" in tflite_summary(model)["input"]
    picture = photos.picture_paths()[0]
    image = mnp.load_image(picture, 96)[None]
    x = (image - np.float32(0.0)) / np.float32(255.0)  # the test's own (pixels - mean) / std
    tensors = run_gold(gold, x)
    logits = tensors[model.graph.tensors[model.graph.operators[-1].inputs[0]].name]
    probs = tensors[model.output.name][0]
    bound = softmax_bound(probs, 2 * UNIT_ROUNDOFF * np.sqrt(53 * 1280) * (1 + np.abs(logits).max()))
    predictions = classify_json(["--tflite", str(path), picture], capsys)[0]["predictions"]
    assert len(predictions) == 5
    for p in predictions:
        assert p["label"] == f"thing {p['index']}"
        assert abs(p["probability"] - probs[p["index"]]) <= bound
    convention = run_gold(gold, gold_input(model, image))[model.output.name][0]  # [-1, 1] instead
    assert np.abs(convention - probs).max() > 100 * bound  # the normalization matters here


CHILD = """
import json, sys
for name in ("tensorflow", "tf_keras", "keras"):
    sys.modules[name] = None  # any import of them now fails
from mobilenet_np.int8 import classify_tflite
print(json.dumps(classify_tflite(sys.argv[1], sys.argv[2:], top=5)))
"""


def test_classify_tflite_needs_no_tensorflow(capsys) -> None:
    path = real_file(UINT8_FILE)
    pictures = photos.picture_paths()
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), *pictures],
                           capture_output=True, text=True, timeout=120, check=False)
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == classify_json(["--tflite", str(path), *pictures], capsys)


# ---- files TFLite's converter writes --------------------------------------------------------


@pytest.fixture(scope="module")
def converted(tf):
    """kind -> .tflite bytes from TFLite's converter (helpers/tflite_cases.converted_files)."""
    return converted_files(tf)


@pytest.mark.parametrize("kind", ["uint8 wrappers", "float32", "float16 weights"])
def test_converted_files_equal_tflite(tf, converted, kind) -> None:
    blob = converted[kind]
    model, gold = load_tflite(blob), interpreter(tf, blob)
    opcodes = {op.opcode for op in model.graph.operators}
    assert ("DEQUANTIZE" in opcodes) == (kind == "float16 weights")
    assert (model.input.dtype == np.uint8) == (kind == "uint8 wrappers")
    for image in sample_pixels(96):
        x = gold_input(model, image[None])
        out, compared = assert_equal_to_tflite(model, gold, x)
        widened = sum(op.opcode == "DEQUANTIZE" for op in model.graph.operators)
        assert compared >= len(model.graph.operators) - widened  # every op but DEQUANTIZE
    assert_not_degenerate(model, sample_pixels(96)[:1])


@pytest.mark.parametrize("seed", [0, 1])
def test_uint8_files_equal_tflite(tf, seed) -> None:
    blob = uint8_graph_file(tf, seed)
    model, gold = load_tflite(blob), interpreter(tf, blob)
    assert {op.opcode for op in model.graph.operators} == {
        "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"}
    assert all(tensor.dtype in (np.uint8, np.int32) for tensor in model.graph.tensors)
    weights = [model.graph.tensors[op.inputs[1]] for op in model.graph.operators
               if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert all(w.quantization.zero_point[0] != 0 for w in weights)  # asymmetric weights
    for k in range(4):
        x = np.random.default_rng(100 + k).integers(0, 256, (1, 24, 24, 3)).astype(np.uint8)
        _, compared = assert_equal_to_tflite(model, gold, x)
        assert compared == len(model.graph.operators) + 1
        _, tensors = model.forward(x, capture=True)
        assert all(len(np.unique(value)) >= 5 for value in tensors.values())  # not degenerate


def test_uint8_v3_ops_equal_tflite(tf) -> None:
    """The uint8 ops MobileNetV3's hosted files add (MUL, LOGISTIC, MEAN with keep_dims,
    CONCATENATION of inputs on other scales, QUANTIZE uint8 -> uint8) in a TF1-style uint8
    file, every tensor, on seeded images; the MEAN's zero-point bias (58.6) is one where
    truncating instead of rounding would be off."""
    blob = uint8_v3_ops_file(tf)
    model, gold = load_tflite(blob), interpreter(tf, blob)
    graph = model.graph
    uint8_ops = {op.opcode for op in graph.operators if graph.tensors[op.outputs[0]].dtype == np.uint8}
    assert {"MUL", "LOGISTIC", "MEAN", "CONCATENATION", "QUANTIZE"} <= uint8_ops
    mean = next(op for op in graph.operators if op.opcode == "MEAN" and op.options["keep_dims"])
    concatenation = next(op for op in graph.operators if op.opcode == "CONCATENATION")
    assert len({float(graph.tensors[i].quantization.scale[0]) for i in concatenation.inputs}) == 2
    for k in range(4):
        x = np.random.default_rng(200 + k).integers(0, 256, (1, 16, 16, 3)).astype(np.uint8)
        _, compared = assert_equal_to_tflite(model, gold, x)
        assert compared >= len(graph.operators) - 3  # every op but the float DEQUANTIZEs
        _, tensors = model.forward(x, capture=True)
        assert len(np.unique(tensors[graph.tensors[mean.outputs[0]].name])) >= 8  # not degenerate


@pytest.fixture(scope="module")
def ops_files(tf):
    return ops_model_files(tf)


@pytest.mark.parametrize("kind", ["int8", "float32"])
def test_ops_around_the_network_equal_tflite(tf, ops_files, kind) -> None:
    blob = ops_files[kind]
    model, gold = load_tflite(blob), interpreter(tf, blob)
    opcodes = {op.opcode for op in model.graph.operators}
    assert {"TRANSPOSE", "MAX_POOL_2D", "CONCATENATION", "SUB"} <= opcodes
    if kind == "int8":
        sub = next(op for op in model.graph.operators if op.opcode == "SUB")
        scales = {float(model.graph.tensors[i].quantization.scale[0]) for i in sub.inputs}
        assert len(scales) == 2  # the rescaling path of SUB is exercised
    for k in range(6):
        x = np.random.default_rng(k).uniform(-1, 1, (1, 3, 20, 20)).astype(np.float32)
        if kind == "int8":
            x = int8_ops.quantize(x, *model.input_quantization)
        _, compared = assert_equal_to_tflite(model, gold, x)
        assert compared >= len(model.graph.operators)


@pytest.mark.parametrize("kind", ["int8", "float32"])
def test_arg_max_equals_tflite(tf, kind) -> None:
    """A file ending in ARG_MAX: the indices equal TFLite's (ties to the first, as TFLite), and a
    classifier that outputs indices is refused by classify in one line, not misread."""
    blob = arg_max_files(tf)[kind]
    model, gold = load_tflite(blob), interpreter(tf, blob)
    assert model.graph.operators[-1].opcode == "ARG_MAX"
    indices = []
    for k in range(8):
        x = np.random.default_rng(k).uniform(-1, 1, (2, 6, 6, 3)).astype(np.float32)
        if kind == "int8":
            x = int8_ops.quantize(x, *model.input_quantization)
        out, _ = assert_equal_to_tflite(model, gold, x)
        assert out.dtype == np.int32 and out.shape == (2,)
        indices.extend(out.tolist())
    assert len(set(indices)) >= 3  # not one class for every input
    with pytest.raises(InputError, match="not an image classifier"):
        Int8Classifier(model)


def test_int8_file_with_float_output_equals_tflite_bit_for_bit(tf) -> None:
    """TF2's default full-int8 file, float in and out: every tensor TFLite's bit for bit, the
    DEQUANTIZE'd float output included (TFLite's optimized order: steps of 8, then the tail)."""
    blob = float_io_int8_file(tf)
    model, gold = load_tflite(blob), interpreter(tf, blob)
    assert [op.opcode for op in model.graph.operators][::4] == ["QUANTIZE", "DEQUANTIZE"]
    for k in range(10):
        x = np.random.default_rng(k).normal(0, 2, (1, 8, 8, 3)).astype(np.float32)
        tensors = run_gold(gold, x)
        out, ours = model.forward(x, capture=True)
        assert out.dtype == np.float32 and len(np.unique(out)) > 20  # the comparison carries information
        for name, value in ours.items():
            assert np.array_equal(value, tensors[name]), name


# ---- uint8 kernels: loop twins ----------------------------------------------------------------


def test_uint8_kernels_equal_their_loop_twins() -> None:
    """Asymmetric uint8 weights (zero point 157) on uint8 activations, ReLU6 clamp in [0, 255]."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (1, 7, 6, 3)).astype(np.uint8)
    weights = rng.integers(0, 256, (4, 3, 3, 3)).astype(np.int32) - 157  # centred, as loaded
    depthwise = rng.integers(0, 256, (1, 3, 3, 3)).astype(np.int32) - 99
    bias = rng.integers(-3000, 3000, 4)
    out = Requantize(1518500250, -9, 3, *activation_range("RELU6", 0.0235, 3, np.uint8),
                     "double_up", np.uint8)
    for stride, padding in (((1, 1), "SAME"), ((2, 2), "SAME"), ((2, 1), "VALID")):
        fast = int8_ops.conv2d(x, 128, weights, bias, out, stride, padding)
        assert fast.dtype == np.uint8 and len(np.unique(fast)) > 5
        assert np.array_equal(fast, int8_reference.conv2d(x, 128, weights, bias, out, stride, padding))
        fast = int8_ops.depthwise_conv2d(x, 128, depthwise, bias[:3], out, stride, padding)
        assert np.array_equal(fast, int8_reference.depthwise_conv2d(x, 128, depthwise, bias[:3], out,
                                                                     stride, padding))
    pooled = int8_ops.average_pool2d(x, (3, 3), (2, 2), "SAME", 0, 255, np.uint8)
    assert np.array_equal(pooled, int8_reference.average_pool2d(x, (3, 3), (2, 2), "SAME", 0, 255,
                                                                np.uint8))
    table = np.exp(-0.1 * np.arange(256, dtype=np.float32)).astype(np.float32)
    logits = rng.integers(0, 256, (2, 11)).astype(np.uint8)
    assert np.array_equal(int8_ops.softmax(logits, table, 1 / 256, 0, np.uint8),
                          int8_reference.softmax(logits, table, 1 / 256, 0, np.uint8))


def test_uint8_mean_and_rescale_equal_their_loop_twins() -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (2, 5, 4, 19)).astype(np.uint8)  # 16 vector channels + 3 scalar
    fast = int8_ops.mean_hw(x, 1518500250, -4, 37, np.uint8)
    assert fast.dtype == np.uint8 and len(np.unique(fast)) > 10
    assert np.array_equal(fast, int8_reference.mean_hw(x, 1518500250, -4, 37, np.uint8))
    moved = int8_ops.rescale_uint8(x, np.float32(0.61), np.float32(-21.3), 7)
    assert len(np.unique(moved)) > 100
    assert np.array_equal(moved, int8_reference.rescale_uint8(x, np.float32(0.61), np.float32(-21.3), 7))


def test_max_pool_and_sub_equal_their_loop_twins() -> None:
    from mobilenet_np.int8.fixedpoint import quantize_multiplier
    from mobilenet_np.int8.graph import AddParams

    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (2, 7, 5, 3)).astype(np.int8)
    for window, stride, padding in (((2, 2), (2, 2), "VALID"), ((3, 3), (2, 2), "SAME"),
                                    ((3, 2), (1, 2), "SAME")):
        fast = int8_ops.max_pool2d(x, window, stride, padding, -100, 90)
        assert np.array_equal(fast, int8_reference.max_pool2d(x, window, stride, padding, -100, 90))
    a, b = x[:1], rng.integers(-128, 128, (1, 7, 5, 3)).astype(np.int8)
    params = AddParams(20, -3, *quantize_multiplier(0.5), 7, *quantize_multiplier(0.17),
                       Requantize(*quantize_multiplier(2.3e-6), 4), b_sign=-1)
    difference = int8_ops.add(a, b, params)
    assert len(np.unique(difference)) > 20
    assert np.array_equal(difference, int8_reference.add(a, b, params))


# ---- one line for everything refused --------------------------------------------------------


def test_builtin_names_are_tensorflows(tf) -> None:
    """Ops are named by the schema's enum: the list equals TensorFlow's own generated schema."""
    import importlib.util

    path = Path(tf.__file__).parent / "lite" / "python" / "schema_py_generated.py"
    if not path.is_file():
        pytest.skip(f"this TensorFlow has no {path.name}")
    spec = importlib.util.spec_from_file_location("tflite_schema", path)
    schema = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(schema)
    names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
    assert BUILTIN_NAMES == tuple(names[code] for code in range(len(BUILTIN_NAMES)))


def test_refusals_are_one_line(tmp_path, capsys) -> None:
    from mobilenet_np.cli import main

    picture = photos.picture_paths()[0]
    for name, data in (("weights.npz", b"PK\x03\x04" + bytes(60)), ("photo.png", Path(picture).read_bytes()),
                       ("model.h5", b"\x89HDF\r\n\x1a\n" + bytes(60))):
        (tmp_path / name).write_bytes(data)
        assert not is_tflite(tmp_path / name)
        assert main(["classify", "--tflite", str(tmp_path / name), picture]) == 2
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0 and "not a .tflite file" in error and name in error, error
    assert main(["classify", "--tflite", str(tmp_path / "missing.tflite"), picture]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "missing.tflite" in error and "Errno" not in error, error
    with pytest.raises(mnp.InputError, match="a .tflite file fixes its model: drop resolution"):
        mnp.load(real_file(UINT8_FILE), resolution=160)
    graph = load_tflite(real_file(UINT8_FILE)).graph
    for opcode, message in (("LOG_SOFTMAX", r"unsupported op\(s\) LOG_SOFTMAX"),
                            ("edgetpu-custom-op", "Edge TPU")):
        graph.operators[3].opcode = opcode
        with pytest.raises(mnp.UnsupportedError, match=f"edge.tflite: .*{message}") as error:
            mnp.int8.TFLiteModel(graph, "edge.tflite")
        assert "\n" not in str(error.value)


def test_predict_takes_pixels_and_refuses_the_rest() -> None:
    model = load_tflite(real_file(UINT8_FILE))
    pixels = sample_pixels(128)[:1]
    assert model.predict(pixels).shape == (1, 1001)
    for bad, message in ((pixels / 127.5 - 1, "takes pixels in \\[0, 255\\]"),
                         (pixels * 2, "outside the \\[0, 255\\]"),
                         (np.where(pixels > 100, np.nan, pixels), "NaN")):
        with pytest.raises(mnp.InputError, match=message):
            model.predict(bad)
    with pytest.raises(mnp.InputError, match=r"input must be uint8 of shape \(N, 128, 128, 3\)"):
        model.forward(pixels)
