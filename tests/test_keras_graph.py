"""Models read by their graph: fine-tuned and hand-built MobileNets that Keras itself wrote.

``helpers/keras_models.py`` builds each model of its ``MODELS`` in tf_keras (Keras 2) and in
Keras 3 (one subprocess each), gives it trained-looking weights, saves it as ``.h5`` and
``.keras`` and runs Keras's ``predict`` on our input. ``mnp.load`` must then read every file
alone and answer what Keras answered: logits within the parity rule (``parity_rtol`` x (1 +
max |logit|), or 8x a one-ulp input nudge's reach when larger: see helpers/bounds.py),
probabilities within what that allows through the softmax, a sigmoid's output within the
logit bound (its slope is at most 1/4). Crafted configs are refused in one line each, and a
config naming code is refused without importing anything.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers.bounds import one_ulp_reach, parity_rtol, softmax_bound
from helpers.data import images
from helpers.keras_models import MODELS

import mobilenet_np as mnp
from mobilenet_np.cli import main
from mobilenet_np.cost import network_cost
from mobilenet_np.graph_classes import CONVERTERS
from mobilenet_np.graph_model import GraphModel
from mobilenet_np.int8 import ops as int8_ops
from mobilenet_np.reports import compare_json

WRITER = Path(__file__).parent / "helpers" / "keras_models.py"
FORMATS = ("model.h5", "model.keras")
GENERATIONS = (2, 3)
# What the closing table (``-s``) prints: measured here, copied into docs/keras-graph.md.
WORST: dict[tuple[str, int], float] = {}  # (model, generation) -> worst error / (1 + max |logit|)
CLASSES: set[str] = set()  # the Keras classes the tested files' graphs hold
REFUSED: dict[str, str] = {}  # crafted case -> its one line
GRAPH_INT8: dict[str, float] = {}  # int8: ours vs TFLite's converter


@pytest.fixture(scope="module")
def written(tf, tmp_path_factory) -> Path:
    """Every model of ``MODELS`` written by both generations, once per module."""
    root = tmp_path_factory.mktemp("keras_graph")
    (root / "inputs").mkdir()
    for name, (_, shape, (low, high)) in MODELS.items():
        np.save(root / "inputs" / f"{name}.npy", images(shape, n=3, seed=4, low=low, high=high))
    np.save(root / "inputs" / "calibration.npy", images((96, 96, 3), n=8, seed=6, low=0, high=255))
    processes = []
    for keras in GENERATIONS:
        if keras == 2 and not importlib.util.find_spec("tf_keras"):
            continue
        log = open(root / f"writer{keras}.log", "w")  # noqa: SIM115 (closed below)
        processes.append((subprocess.Popen(
            [sys.executable, str(WRITER), "--keras", str(keras), str(root / "inputs"),
             str(root / f"k{keras}")], stdout=log, stderr=subprocess.STDOUT), log, keras))
    for process, log, keras in processes:
        code = process.wait()
        log.close()
        assert code == 0, (root / f"writer{keras}.log").read_text()[-3000:]
    return root


def case_path(written: Path, keras: int, name: str, file: str) -> Path:
    path = written / f"k{keras}" / name / file
    if not path.exists():
        pytest.skip(f"Keras {keras} is not installed (tf_keras for Keras 2)")
    return path


CASES = [pytest.param(keras, name, file, id=f"keras{keras}-{name}-{file}")
         for keras in GENERATIONS for name in MODELS for file in FORMATS]


@pytest.mark.parametrize(("keras", "name", "file"), CASES)
def test_graph_model_matches_keras(written, keras, name, file) -> None:
    path = case_path(written, keras, name, file)
    x = np.load(written / "inputs" / f"{name}.npy")
    expected = np.load(path.parent / "predict.npy")
    logits = np.load(path.parent / "logits.npy")
    assert np.ptp(logits, axis=0).max() > 0.1, "degenerate weights: every image gets one answer"
    model = mnp.load(path)
    assert isinstance(model, GraphModel) == (name != "stock_v1"), type(model)
    bound = max(parity_rtol(model.layers) * (1 + float(np.abs(logits).max())),
                one_ulp_reach(model, x))
    if model.include_top:
        ours = model.predict(x, output="logits")
        error = float(np.abs(ours - logits).max())
        assert error <= bound, f"logits off by {error:.3g} > {bound:.3g}"
        assert np.abs(model.predict(x) - expected).max() <= softmax_bound(expected, bound)
    else:  # logits, or a sigmoid (slope <= 1/4: the logit bound holds for it too)
        ours = model.predict(x)
        error = float(np.abs(ours - expected).max())
        assert error <= bound, f"outputs off by {error:.3g} > {bound:.3g}"
    assert np.allclose(model.forward(x), model.predict(x), rtol=0, atol=bound)
    case = (name, keras)  # the worst of its .h5 and .keras
    WORST[case] = max(WORST.get(case, 0.0), error / (1 + float(np.abs(logits).max())))
    if isinstance(model, GraphModel):
        CLASSES.update(node.class_name for node in model.graph.nodes)


def test_stock_application_loads_by_name_as_today(written, monkeypatch) -> None:
    """A keras.applications model itself keeps the family path: the same Network as before,
    its arrays and its config each read once."""
    import mobilenet_np.graph_model
    import mobilenet_np.keras_graph

    path = case_path(written, 3, "stock_v1", "model.h5")
    x = np.load(written / "inputs" / "stock_v1.npy")
    reads = []

    def counting(read):
        def counted(*args, **kwargs):
            reads.append(read.__name__)
            return read(*args, **kwargs)
        return counted

    for module, name in ((mobilenet_np.graph_model, "read_weights_file"),
                         (mobilenet_np.keras_graph, "_read_config")):
        monkeypatch.setattr(module, name, counting(getattr(module, name)))
    model = mnp.load(path)
    assert sorted(reads) == ["_read_config", "read_weights_file"], reads
    assert type(model) is mnp.Network and model.family.name == "v1"
    assert model.input_shape == (96, 96, 3)  # read off the saved model's input layer
    today = mnp.load(path, resolution=96)  # options given: the family path, as before
    assert np.array_equal(model.predict(x), today.predict(x))


def test_blocks_recovered(written) -> None:
    """A nested V1 shows as 13 separable blocks; V2 built layer by layer as inverted residuals."""
    v1 = mnp.load(case_path(written, 3, "v1_functional", "model.keras"))
    assert [block.kind for block in v1.blocks].count("separable") == 13
    assert v1.preprocessing == "pixels" and v1.class_count == 5
    v2 = mnp.load(case_path(written, 2, "v2_layers", "model.h5"))
    assert "inverted_residual" in [block.kind for block in v2.blocks]
    assert any(unit.op == "add" for unit in v2.plan)
    assert "Keras model" in v2.summary() and "dense" in v2.summary()
    # tf.keras's V3: x + 3, ReLU6, * 1/6 (TFOpLambda ops) recovered as one hard-swish, and the
    # fused plan runs the known units: convs with BN folded, squeeze-excite, residuals
    v3 = mnp.load(case_path(written, 2, "v3small_sigmoid", "model.h5"))
    kinds = [layer.kind for layer in v3.layers]
    assert "hard_swish" in kinds and kinds.count("scale_shift") == 0
    assert kinds[0] == "rescaling"  # V3's own Rescaling(1 / 127.5, offset=-1), as our tables
    assert {"conv", "depthwise", "squeeze_excite", "add"} <= {unit.op for unit in v3.plan}


def test_saved_model_takes_backend_and_preprocessing_only(written) -> None:
    path = case_path(written, 3, "v2_sequential", "model.keras")
    with pytest.raises(mnp.InputError, match="drop alpha"):
        mnp.load(path, alpha=0.5)
    assert mnp.load(path).preprocessing == "scaled"  # a keras.applications MobileNetV2 inside
    assert mnp.load(path, preprocessing="pixels").expects_pixels


def crafted(written: Path, tmp_path: Path, edit) -> Path:
    """A copy of a Keras 3 .keras file whose config.json ``edit(config)`` changed."""
    source = case_path(written, 3, "v1_layers_gray", "model.keras")
    with zipfile.ZipFile(source) as archive:
        config = json.loads(archive.read("config.json"))
        weights = archive.read("model.weights.h5")
    edit(config)
    path = tmp_path / "crafted.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights)
    return path


def _layer(config: dict, class_name: str) -> dict:
    return next(layer for layer in config["config"]["layers"] if layer["class_name"] == class_name)


def _many(config: dict) -> None:
    relu = _layer(config, "ReLU")
    config["config"]["layers"] += [dict(relu, name=f"r{i}") for i in range(10_000)]


EDITS = {
    "lambda": (lambda c: _layer(c, "ReLU").update(class_name="Lambda"), "is a Lambda"),
    "custom class": (lambda c: _layer(c, "ReLU").update(
        class_name="Evil", module="evil_module_xyz.layers", registered_name="Custom>Evil"),
        "custom class 'Evil' from 'evil_module_xyz.layers'"),
    "unknown Keras class": (lambda c: _layer(c, "ReLU").update(class_name="LayerNormalization"),
                            "a layer class this package does not read"),
    "missing inbound layer": (lambda c: _layer(c, "Conv2D")["inbound_nodes"][0]["args"][0][
        "config"].update(keras_history=["nowhere", 0, 0]), "reads 'nowhere'"),
    "cycle": (lambda c: _layer(c, "Conv2D")["inbound_nodes"][0]["args"][0]["config"].update(
        keras_history=["dense", 0, 0]), "missing, or a cycle"),
    "parallel branches": (lambda c: [layer for layer in c["config"]["layers"]
                                     if layer["class_name"] == "Conv2D"][1]["inbound_nodes"][0][
        "args"][0]["config"].update(keras_history=["conv2d", 0, 0]),
        "not the layer just before it"),
    "huge shape": (lambda c: _layer(c, "InputLayer")["config"].update(
        batch_shape=[None, 100_000, 100_000, 1]), "values per image: refused"),
    "10,000 layers": (_many, "more than 5000 layers"),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_crafted_configs_are_one_line(written, tmp_path, case) -> None:
    edit, says = EDITS[case]
    path = crafted(written, tmp_path, edit)
    with pytest.raises(mnp.MobileNetError) as error:
        mnp.load(path)
    assert says in str(error.value) and "\n" not in str(error.value), str(error.value)
    REFUSED[case] = str(error.value).replace(str(path), "FILE")
    assert "evil_module_xyz" not in sys.modules  # named, never imported


def test_cli_classify_with_own_labels_and_summary(written, tmp_path, capsys) -> None:
    """classify prints the model's own class names; summary shows its graph's layers."""
    from PIL import Image

    path = case_path(written, 3, "v1_functional", "model.keras")
    photo = tmp_path / "photo.png"
    Image.fromarray(images((96, 96, 3), n=1, seed=9, low=0, high=255)[0].astype(np.uint8)).save(photo)
    labels = tmp_path / "labels.txt"
    labels.write_text("daisy\ndandelion\nroses\nsunflowers\ntulips\n")
    assert main(["classify", str(photo), "--weights", str(path), "--labels", str(labels),
                 "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert sum(flower in out for flower in ("daisy", "dandelion", "roses", "sunflowers",
                                            "tulips")) == 2, out
    assert main(["summary", "--weights", str(path)]) == 0
    out = capsys.readouterr().out
    assert "conv_dw_13" in out and "dense" in out
    for fused in ([], ["--fused"]):  # layer by layer, and the fused steps
        assert main(["profile", "--weights", str(path), "--repeats", "1", "--json", *fused]) == 0
        names = [row["name"] for row in json.loads(capsys.readouterr().out)]
        assert any("conv_dw_13" in name for name in names), names
    assert main(["profile", "--weights", str(path), "--alpha", "0.5"]) == 2
    assert "drop --alpha" in capsys.readouterr().err
    shutil.copy(path, tmp_path / "short.txt")
    labels.write_text("one\ntwo\n")
    assert main(["classify", str(photo), "--weights", str(path), "--labels", str(labels)]) == 2
    assert "labels" in capsys.readouterr().err


COMPARED = ("kernel", "in_channels", "out_channels", "depth_multiplier", "size", "standard_macs",
            "separable_macs", "standard_params", "separable_params")


def test_compare_on_files(written, capsys) -> None:
    """compare --weights: a fine-tuned V1's recovered blocks compare exactly as our own V1 of
    its width and size, as the stock file does; a V2 built layer by layer compares its inverted
    residuals; a depthwise conv with no 1x1 conv after it is named, not compared."""
    def report(name: str) -> dict:
        path = case_path(written, 3, name, "model.keras")
        assert main(["compare", "--weights", str(path), "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    family = compare_json(mnp.get_family("v1").blocks(alpha=0.25, resolution=96))
    expected = [[row[key] for key in COMPARED] for row in family["blocks"]]
    for name in ("v1_functional", "stock_v1"):
        found = report(name)
        assert [[row[key] for key in COMPARED] for row in found["blocks"]] == expected, name
        assert found["blocks_only"] == family["blocks_only"] and found["not_compared"] == []
    v1 = mnp.load(case_path(written, 3, "v1_functional", "model.keras"))
    assert report("v1_functional")["whole_network"]["separable_macs"] == \
        network_cost(v1.layers)["total_macs"]  # the Dense(5) head, not ImageNet's 1000
    v2 = report("v2_layers")
    assert len(v2["blocks"]) == 3 and v2["not_compared"] == []
    zoo = report("zoo_mixed")  # SeparableConv2D is a pair; a DepthwiseConv2D before pooling is not
    assert len(zoo["blocks"]) == 1 and len(zoo["not_compared"]) == 1
    path = case_path(written, 3, "zoo_mixed", "model.keras")
    assert main(["compare", "--weights", str(path)]) == 0
    assert f"not compared (no 1x1 conv after it in its block, or its block's pair is another " \
           f"depthwise): {zoo['not_compared'][0]}" in capsys.readouterr().out
    assert main(["compare", "--weights", str(path), "--alpha", "0.5"]) == 2
    assert "drop --alpha" in capsys.readouterr().err


ACTIVATION_RELATIVE = 2e-5  # test_int8_quantize.py: min/max of float32 activations, two orders
WEIGHT_RELATIVE = 8 * 2.0**-23  # test_int8_quantize.py: BN folded in float32 vs float64


def _softmax_input(graph, tensors: dict) -> tuple[np.ndarray, float]:
    """The int8 logits (the SOFTMAX's input) as (N, classes) integers, and their scale."""
    softmax = next(op for op in graph.operators if op.opcode == "SOFTMAX")
    tensor = graph.tensors[softmax.inputs[0]]
    q = tensors[tensor.name].astype(np.int64)
    return q.reshape(len(q), -1) - int(tensor.quantization.zero_point[0]), float(
        tensor.quantization.scale[0])


def test_quantized_graph_model_against_tflites_converter(tf, written) -> None:
    """``mnp.quantize`` of a fine-tuned V1 (Rescaling, GAP, Dropout, Dense(5, softmax)) beside
    TFLite's full-int8 conversion of the same Keras model, calibrated on the same 8 images.

    Both fold the same batch norms into the same kernels and take each activation's range
    from its min/max over the same images: the same ops in the same order, every scale equal
    within float32 round-off (the bounds of test_int8_quantize.py), but one. TFLite's
    calibrator logs an ADD's inputs again after the ADD wrote its sum over them (as that test
    models): the Rescaling's product (pixels / 127.5, in [0, 2]) gets the union with the sum's
    [-1, 1], a scale 1.5x coarser than ours. So on images it did not see, ours is at least as
    close to the float model as TFLite's (within one int8 logit step), and the two rank the
    images alike: only where two int8 logits are about one step apart may the best class
    differ (2 of N images).
    """
    from helpers.int8_cases import interpreter

    from mobilenet_np.int8.calibrate import affine_parameters
    from mobilenet_np.int8.quantize import calibrate

    path = case_path(written, 3, "v1_functional", "model.keras")
    model = mnp.load(path)
    calibration = np.load(written / "inputs" / "calibration.npy")
    ours = mnp.quantize(model, calibration)
    blob = (path.parent / "model_int8.tflite").read_bytes()
    theirs = mnp.load_tflite(blob).graph  # read, not run: TFLite's interpreter runs it below
    main_ops = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MUL", "ADD", "MEAN", "SOFTMAX")
    pairs = list(zip(*([op for op in graph.operators if op.opcode in main_ops]
                       for graph in (ours.graph, theirs)), strict=True))
    assert all(a.opcode == b.opcode for a, b in pairs)
    ranges = calibrate(model, calibration).ranges
    product, total = (ours.graph.tensors[a.outputs[0]].name for a, _ in pairs[:2])  # Rescaling
    assert [a.opcode for a, _ in pairs[:2]] == ["MUL", "ADD"]
    union = affine_parameters(min(ranges[product][0], ranges[total][0]),
                              max(ranges[product][1], ranges[total][1]))[0]
    for a, b in pairs:
        mine, gold_tensor = ours.graph.tensors[a.outputs[0]], theirs.tensors[b.outputs[0]]
        scale = union if mine.name == product else mine.quantization.scale[0]
        assert abs(scale / gold_tensor.quantization.scale[0] - 1) <= ACTIVATION_RELATIVE, mine.name
        if a.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w, v = ours.graph.tensors[a.inputs[1]], theirs.tensors[b.inputs[1]]
            assert np.abs(w.quantization.scale / v.quantization.scale - 1).max() <= WEIGHT_RELATIVE
            assert np.abs(w.data.astype(np.int64) - v.data).max() <= 1, w.name
    tests = images((96, 96, 3), n=24, seed=11, low=0, high=255)  # not the calibration images
    gold = interpreter(tf, blob)
    given = gold.get_input_details()[0]
    logits = theirs.tensors[next(op for op in theirs.operators if op.opcode == "SOFTMAX").inputs[0]]
    captured = []
    for image in tests:
        gold.set_tensor(given["index"], int8_ops.quantize(image[None], *given["quantization"]))
        gold.invoke()
        captured.append(gold.get_tensor(logits.index))
    their_logits, their_scale = _softmax_input(theirs, {logits.name: np.concatenate(captured)})
    q, tensors = ours.forward(int8_ops.quantize(tests, *ours.input_quantization), capture=True)
    our_logits, our_scale = _softmax_input(ours.graph, tensors)
    reference = model.predict(tests, output="logits")  # (N, 5) float
    n = len(tests)
    assert len(set(reference.argmax(axis=1))) >= 2 and np.ptp(reference, axis=0).max() > 1
    assert np.ptp(q.astype(np.int64)) > 64 and (q > -128).mean() > 0.5, "int8 outputs saturated"
    ours_error = float(np.abs(our_logits * our_scale - reference).mean())
    their_error = float(np.abs(their_logits * their_scale - reference).mean())
    agree = float(np.mean(our_logits.argmax(axis=1) == their_logits.argmax(axis=1)))
    GRAPH_INT8.update(agreement=agree, ours=ours_error / our_scale,
                      theirs=their_error / their_scale, n=n)
    assert ours_error <= their_error + their_scale
    assert agree >= 1 - 2 / n


def test_quantize_refuses_units_int8_cannot_lower(written) -> None:
    """A graph whose units have no int8 lowering is one line naming them, never a wrong model:
    a sigmoid head, a Normalization in front."""
    for name, says in (("v3small_sigmoid", "'dense', 'sigmoid'"), ("zoo_mixed", "'normalization'")):
        model = mnp.load(case_path(written, 3, name, "model.keras"))
        with pytest.raises(mnp.UnsupportedError, match="int8 quantization has no lowering") as error:
            mnp.quantize(model, np.load(written / "inputs" / f"{name}.npy"))
        assert says in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_print_table(capsys) -> None:
    """The closing table: worst error per case over (1 + max |logit|), the classes read, the
    refusals, int8 against TFLite (``pytest tests/test_keras_graph.py -s`` prints it)."""
    with capsys.disabled():
        print("\n| model | Keras 2 | Keras 3 |\n| --- | --- | --- |")
        for name, (what, _, _) in MODELS.items():
            cells = [f"{WORST[name, k]:.2e}" if (name, k) in WORST else "-" for k in GENERATIONS]
            print(f"| {what} | {' | '.join(cells)} |")
        print(f"\nKeras classes in the tested files ({len(CLASSES)}): "
              f"{', '.join(sorted(CLASSES))}")
        print(f"read but in no tested file: {', '.join(sorted(set(CONVERTERS) - CLASSES))}")
        for case, line in REFUSED.items():
            print(f"refused, {case}: {line}")
        if GRAPH_INT8:
            print(f"int8 (v1_functional, {GRAPH_INT8['n']:.0f} images): best class as TFLite's "
                  f"converter's on {GRAPH_INT8['agreement']:.0%}; mean |int8 logit - float| "
                  f"ours {GRAPH_INT8['ours']:.1f} steps, TFLite's {GRAPH_INT8['theirs']:.1f}")
