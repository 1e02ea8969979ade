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
from mobilenet_np.graph_model import GraphModel

WRITER = Path(__file__).parent / "helpers" / "keras_models.py"
FORMATS = ("model.h5", "model.keras")
GENERATIONS = (2, 3)
WORST: dict[str, float] = {}  # case -> worst error / bound, printed with -s


@pytest.fixture(scope="module")
def written(tf, tmp_path_factory) -> Path:
    """Every model of ``MODELS`` written by both generations, once per module."""
    root = tmp_path_factory.mktemp("keras_graph")
    (root / "inputs").mkdir()
    for name, (_, shape, (low, high)) in MODELS.items():
        np.save(root / "inputs" / f"{name}.npy", images(shape, n=3, seed=4, low=low, high=high))
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
    WORST[f"keras{keras} {name} {file}"] = error / (1 + float(np.abs(logits).max()))


def test_stock_application_loads_by_name_as_today(written) -> None:
    """A keras.applications model itself keeps the family path: the same Network as before."""
    path = case_path(written, 3, "stock_v1", "model.h5")
    x = np.load(written / "inputs" / "stock_v1.npy")
    model = mnp.load(path)
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
    assert "hard_swish" in kinds and kinds.count("scale_shift") == 1  # V3's own Rescaling
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


def test_print_table(capsys) -> None:
    """The worst error per case over (1 + max |logit|) (``-s`` shows it)."""
    with capsys.disabled():
        for case, error in sorted(WORST.items()):
            print(f"{case:<48} {error:.2e}")
