"""``mobilenet-np classify``, and the real ImageNet weights against Keras."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers.bounds import parity_rtol, roundoff_bound, softmax_bound
from helpers.data import write_legacy_h5
from PIL import Image

import mobilenet_np as mnp
from mobilenet_np.cli import main
from mobilenet_np.files import save_npz

pytestmark = pytest.mark.numerical  # .ci/run runs these with other BLAS kernels too


def grace_hopper() -> str:
    cbook = pytest.importorskip("matplotlib.cbook", reason="grace_hopper.jpg ships with matplotlib")
    return str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """Random 0.25/128 weights as .h5 and .npz, and two photos-to-be."""
    folder = tmp_path_factory.mktemp("cli")
    model = mnp.MobileNet(alpha=0.25, resolution=128, weights=None, seed=4)
    write_legacy_h5(folder / "w.h5", model.layers, model.params)
    save_npz(model.params, folder / "w.npz")
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(folder / name)
    return folder, model


def test_classify_json_is_exactly_the_documented_shape(weight_files, capsys) -> None:
    folder, model = weight_files
    images = [str(folder / "a.png"), str(folder / "b.jpg")]
    # classify runs both images as one batch, the check one at a time: BLAS may sum in
    # another order (see roundoff_bound), so probabilities agree to that bound, not exactly.
    x = np.stack([mnp.preprocess_input(mnp.load_image(image, 128)) for image in images])
    bound = roundoff_bound(model, x)
    for weights in ("w.h5", "w.npz"):
        code = main(["classify", *images, "--weights", str(folder / weights),
                     "--resolution", "128", "--top", "3", "--json"])
        assert code == 0
        results = json.loads(capsys.readouterr().out)
        assert [r["image"] for r in results] == images
        for result, image in zip(results, images, strict=True):
            assert set(result) == {"image", "predictions"}
            probs = model.predict(mnp.preprocess_input(mnp.load_image(image, 128))[None])[0]
            best = np.argsort(-probs)[:3]
            assert [p["index"] for p in result["predictions"]] == best.tolist()
            for p in result["predictions"]:
                assert set(p) == {"index", "wnid", "label", "probability"}
                assert (p["wnid"], p["label"]) == mnp.imagenet_classes()[p["index"]]
                assert abs(p["probability"] - float(probs[p["index"]])) <= bound


def test_one_bad_image_is_reported_and_the_rest_finish(weight_files, capsys) -> None:
    folder, _ = weight_files
    (folder / "bad.jpg").write_text("not a picture")
    code = main(["classify", str(folder / "a.png"), str(folder / "bad.jpg"),
                 str(folder / "missing.png"), str(folder / "b.jpg"),
                 "--weights", str(folder / "w.npz"), "--resolution", "128"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "bad.jpg: not an image file" in err and "missing.png" in err
    assert "a.png" in out and "b.jpg" in out and "bad.jpg" not in out


def test_images_run_in_chunks_keep_their_order_and_answers(weight_files, capsys,
                                                          monkeypatch) -> None:
    """Chunks of 2 put a bad image and chunk edges between good ones; each keeps its answer."""
    folder, model = weight_files
    (folder / "bad.jpg").write_text("not a picture")
    monkeypatch.setattr("mobilenet_np.classify.CHUNK", 2)
    images = [str(folder / name) for name in ("a.png", "bad.jpg", "b.jpg", "a.png", "b.jpg")]
    code = main(["classify", *images, "--weights", str(folder / "w.npz"), "--resolution", "128",
                 "--top", "1", "--json"])
    results = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [r["image"] for r in results] == images  # every input, the bad one included
    assert set(results[1]) == {"image", "error"} and "not an image file" in results[1]["error"]
    good = [image for image in images if not image.endswith("bad.jpg")]
    x = np.stack([mnp.preprocess_input(mnp.load_image(image, 128)) for image in good])
    bound = roundoff_bound(model, x)  # chunks of 2 vs one image: another BLAS sum order
    for result, image in zip([r for r in results if "error" not in r], good, strict=True):
        probs = model.predict(mnp.preprocess_input(mnp.load_image(image, 128))[None])[0]
        assert result["predictions"][0]["index"] == int(np.argmax(probs))
        assert abs(result["predictions"][0]["probability"] - float(probs.max())) <= bound


def test_classify_reads_alpha_from_the_weights_and_refuses_a_contradiction(weight_files, capsys):
    folder, _ = weight_files
    assert main(["classify", str(folder / "a.png"), "--weights", str(folder / "w.npz"),
                 "--resolution", "128"]) == 0
    capsys.readouterr()
    assert main(["classify", str(folder / "a.png"), "--weights", str(folder / "w.npz"),
                 "--alpha", "0.5"]) == 2
    assert "holds MobileNet V1 alpha=0.25" in capsys.readouterr().err


def test_classify_without_alpha_reads_the_weights_file_once(weight_files, capsys,
                                                           monkeypatch) -> None:
    import mobilenet_np.graph_model
    import mobilenet_np.weights

    folder, _ = weight_files
    read, reads = mobilenet_np.weights.read_weights_file, []

    def counted(*args, **kwargs):
        reads.append(args[0])
        return read(*args, **kwargs)

    for module in (mobilenet_np.weights, mobilenet_np.graph_model):
        monkeypatch.setattr(module, "read_weights_file", counted)
    for weights in ("w.h5", "w.npz"):
        reads.clear()
        assert main(["classify", str(folder / "a.png"), "--weights", str(folder / weights),
                     "--resolution", "128"]) == 0
        assert reads == [str(folder / weights)]
    assert "a.png" in capsys.readouterr().out


def test_python_dash_m_runs_the_cli(weight_files) -> None:
    folder, _ = weight_files
    done = subprocess.run([sys.executable, "-m", "mobilenet_np", "classify", str(folder / "a.png"),
                           "--weights", str(folder / "w.h5"), "--resolution", "128"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(folder / "a.png")) and " 1. " in done.stdout


def test_real_weights_top5_equals_keras(tf, pretrained_path) -> None:
    """The shared 0.25/224 ImageNet file on matplotlib's grace_hopper.jpg, vs Keras 3.

    Logits: the parity rule (conftest ``parity_rtol``: 1.0e-5 x (1 + max |logit|) for this
    model); probabilities: what that allows through the softmax (``softmax_bound``).
    """
    import keras

    photo = grace_hopper()
    x = mnp.preprocess_input(mnp.load_image(photo, 224))[None]
    model = mnp.MobileNet(alpha=0.25, resolution=224, weights=pretrained_path)
    theirs_model = keras.applications.MobileNet(alpha=0.25, weights=str(pretrained_path))
    pixels = keras.utils.img_to_array(keras.utils.load_img(photo, target_size=(224, 224)))
    keras_x = keras.applications.mobilenet.preprocess_input(pixels[None])
    np.testing.assert_array_equal(x, keras_x)  # same pixels in, so any gap is the network's
    theirs = np.asarray(theirs_model(keras_x))
    logits_model = keras.Model(theirs_model.input, theirs_model.get_layer("reshape_2").output)
    keras_logits = np.asarray(logits_model(keras_x))
    logits = model.forward(x, output="logits")
    logit_bound = parity_rtol(model.layers) * (1 + np.abs(keras_logits).max())
    assert np.abs(logits - keras_logits).max() <= logit_bound
    for ours in (model.predict(x), model.predict(x, fused=False)):
        assert np.argsort(-ours[0])[:5].tolist() == np.argsort(-theirs[0])[:5].tolist()
        assert np.abs(ours - theirs).max() <= softmax_bound(theirs, logit_bound)
    ours = model.predict(x)
    top = mnp.decode_predictions(ours, top=2)[0]
    assert [label for _, label, _ in top] == ["bow_tie", "military_uniform"]
    assert top[0][2] == pytest.approx(0.349, abs=0.001)
