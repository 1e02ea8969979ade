"""Weight files Keras itself writes, in every format of both generations, read with no flags.

``keras_writer.py`` builds each variant in tf_keras (Keras 2) and in Keras 3, one subprocess
per generation, gives it our calibrated random weights (Keras's own init makes outputs vanish)
and writes every format with Keras's own calls (tf_keras writes Keras 3's two layouts too).
``mnp.load(path, resolution=...)`` must then find the family, alpha, minimalistic, depth
multiplier, top and classes in the file alone (pooling has no weights: no weights file can
tell it, so it is given), and its outputs must equal Keras's: logits or features within
conftest's parity rule (``parity_rtol`` x (1 + max |output|)), or within 8x the output change
a one-ulp input nudge causes when that is larger (``one_ulp_reach``: deep random variants with
max pooling carry round-off furthest; Keras 2 and Keras 3 themselves differ by 3.8e-5 x scale
on V1 0.5 dm 2 max, measured); probabilities within what that allows through the softmax. The
same after ``convert`` to .npz.

The default run takes a slice (every family, format and head at least once); the full matrix
is behind ``-m keras_matrix``. Run with ``-s`` for the table of worst errors.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import marshal
import subprocess
import sys
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from helpers.bounds import one_ulp_reach, parity_rtol, softmax_bound
from helpers.data import images

import mobilenet_np as mnp
from mobilenet_np.weights import convert, read_weights_file

RESOLUTION = 96  # every family takes it, and it keeps the matrix fast
WRITER = Path(__file__).parent / "helpers" / "keras_writer.py"
FILES = {"keras2_weights.h5": "Keras 2 save_weights .h5", "keras2_model.h5": "Keras 2 save .h5",
         "keras2.weights.h5": "Keras 2 .weights.h5", "keras2.keras": "Keras 2 .keras",
         "keras3.weights.h5": "Keras 3 .weights.h5", "keras3_model.h5": "Keras 3 save .h5",
         "keras3.keras": "Keras 3 .keras"}
KERAS_MODELS = {"v1": "MobileNet", "v2": "MobileNetV2", "v3-small": "MobileNetV3Small",
                "v3-large": "MobileNetV3Large"}
CLASSES = {"v3-small": mnp.MobileNetV3Small, "v3-large": mnp.MobileNetV3Large}
HEADS = {"top": {}, "avg": {"include_top": False, "pooling": "avg"},
         "max": {"include_top": False, "pooling": "max"}, "classes10": {"classes": 10}}


@dataclass(frozen=True)
class Variant:
    """One Keras model: a family, its width and own options, and its head."""

    arch: str
    alpha: float
    head: str
    own: tuple = field(default=())  # e.g. (("minimalistic", True),)

    def __str__(self) -> str:
        return "-".join([self.arch, f"{self.alpha:g}", *(f"{k}={v}" for k, v in self.own),
                         self.head])

    def options(self) -> dict:
        """Builder options, the same words in Keras and here (Keras says ``input_shape``)."""
        return {"alpha": self.alpha, **dict(self.own), **HEADS[self.head]}



def generation(file: str) -> int:
    """The Keras generation that writes ``file`` (a key of ``FILES``)."""
    return 2 if file.startswith("keras2") else 3


WIDTHS = [("v1", 0.25, ()), ("v1", 0.5, (("depth_multiplier", 2),)), ("v2", 0.35, ()),
          ("v2", 1.3, ())] + [(arch, alpha, (("minimalistic", minimalistic),))
                              for arch in ("v3-small", "v3-large") for alpha in (0.75, 1.0)
                              for minimalistic in (False, True)]
VARIANTS = [Variant(arch, alpha, head, own) for arch, alpha, own in WIDTHS for head in HEADS]
# Every family, format and head once; V3-Small 1.0 with its top is an official file's model.
SLICE = [Variant("v1", 0.25, "classes10"), Variant("v2", 1.3, "avg"),
         Variant("v3-small", 1.0, "top", (("minimalistic", False),)),
         Variant("v3-large", 1.0, "max", (("minimalistic", True),))]
CASES = [pytest.param(variant, file, id=f"{variant}-{file}",
                      marks=() if variant in SLICE else pytest.mark.keras_matrix)
         for variant in VARIANTS for file in FILES]
WORST: dict[tuple[str, str], float] = {}  # (format, family) -> worst error / scale
ABOVE_RULE: list[str] = []  # cases above the fixed 2e-5 rule, for the printed table


def selected_variants(request) -> list[Variant]:
    """The variants this session's selected tests of this module use: written once, together."""
    variants = set()
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if item.path == request.path and callspec and "variant" in callspec.params:
            variants.add(callspec.params["variant"])
    return sorted(variants, key=str)


def run_writers(jobs: dict[int, list], folder: Path) -> None:
    """Both generations' writers at once (one subprocess each: tf_keras and Keras 3 never meet);
    their chatter goes to log files, which no full pipe can block."""
    processes = {}
    for keras, keras_jobs in jobs.items():
        job_file, log = folder / f"jobs{keras}.json", folder / f"writer{keras}.log"
        job_file.write_text(json.dumps(keras_jobs))
        with open(log, "w") as out:
            processes[keras] = (subprocess.Popen(
                [sys.executable, str(WRITER), "--keras", str(keras), str(job_file)],
                stdout=out, stderr=subprocess.STDOUT), log)
    for keras, (process, log) in processes.items():
        assert process.wait() == 0, f"Keras {keras} writer failed:\n{log.read_text()[-3000:]}"


@pytest.fixture(scope="module")
def keras_written(request, tmp_path_factory, tf):
    """Variant -> (our model with random weights, its input, the folder Keras wrote into, and
    how far round-off can move its outputs)."""
    generations = [2, 3] if importlib.util.find_spec("tf_keras") else [3]
    root = tmp_path_factory.mktemp("keras_files")
    written, jobs = {}, defaultdict(list)
    for variant in selected_variants(request):
        folder = root / str(variant)
        ours = mnp.Network(mnp.get_family(variant.arch), weights=None, seed=7,
                           resolution=RESOLUTION, **variant.options())
        low, high = (0.0, 255.0) if ours.expects_pixels else (-1.0, 1.0)
        x = images(ours.input_shape, n=2, seed=3, low=low, high=high)
        folder.mkdir()
        np.savez(folder / "params.npz", **ours.params)
        np.save(folder / "x.npy", x)
        layers = [[layer.name, list(layer.weights)] for layer in ours.layers if layer.weights]
        for keras in generations:
            (folder / f"keras{keras}").mkdir()
            jobs[keras].append({
                "folder": str(folder / f"keras{keras}"), "model": KERAS_MODELS[variant.arch],
                "kwargs": {"input_shape": [RESOLUTION, RESOLUTION, 3], **variant.options()},
                "params": str(folder / "params.npz"), "layers": layers,
                "input": str(folder / "x.npy")})
        written[variant] = (ours, x, folder, one_ulp_reach(ours, x))
    run_writers(jobs, root)
    yield written
    print_table()


def keras_file(keras_written, variant: Variant, file: str) -> Path:
    """The file Keras wrote, or a skip when its generation is not installed."""
    path = keras_written[variant][2] / f"keras{generation(file)}" / file
    if not path.exists() and generation(file) == 2:
        pytest.skip("needs tf-keras (Keras 2) to write Keras 2 files: pip install -e '.[test]'")
    return path


def assert_spread(expected: np.ndarray, bound: float) -> None:
    """The comparison means something only if outputs spread over several units and the two
    images move them far more than the tolerance (deep random nets wash inputs out)."""
    assert expected.std(axis=1).min() > 0.1
    assert np.abs(expected[0] - expected[1]).max() > 20 * bound


@pytest.mark.parametrize(("variant", "file"), CASES)
def test_keras_file_loads_by_itself_and_matches_keras(keras_written, variant, file,
                                                      tmp_path) -> None:
    """Loaded with the resolution (and pooling) alone, directly and via .npz: Keras's outputs."""
    ours, x, _, reach = keras_written[variant]
    path = keras_file(keras_written, variant, file)
    folder = path.parent
    # Keras's layer names, paired with ours by position: the family's keras_name must map them.
    for theirs, name in json.loads((folder / "names.json").read_text()):
        assert ours.family.keras_name(theirs) == name
    expected = np.load(folder / "expected.npy")
    scale = 1 + float(np.abs(expected).max())
    config = convert(path, tmp_path / "converted.npz")
    assert config == {"arch": variant.arch, **{k: ours.config[k] for k in config if k != "arch"}}
    bound = max(parity_rtol(ours.layers) * scale, reach)
    assert_spread(expected, bound)
    for source in (path, tmp_path / "converted.npz"):
        loaded = mnp.load(source, resolution=RESOLUTION, pooling=ours.config["pooling"])
        assert loaded.family is ours.family and loaded.config == ours.config
        assert loaded.params.keys() == ours.params.keys()
        for key, array in ours.params.items():
            np.testing.assert_array_equal(loaded.params[key], array, err_msg=key)
        error = float(np.abs(loaded.predict(x, output="logits") - expected).max())
        record(FILES[file], variant, error / scale, bound / scale, parity_rtol(ours.layers))
        assert error <= bound, f"{source.name}: {error:.3g} > {bound:.3g} (scale {scale:.3g})"
        if ours.include_top:
            probabilities = np.load(folder / "probabilities.npy")
            assert np.abs(loaded.predict(x) - probabilities).max() <= \
                softmax_bound(probabilities, bound)


@pytest.mark.parametrize("variant", [v for v in SLICE if v.arch in CLASSES], ids=str)
def test_keras2_v3_files_load_by_name_into_the_class(keras_written, variant) -> None:
    """The official V3 files are tf_keras's layout: ``Conv/BatchNorm``, read by name; a file
    from a 96x96 model loads into the class's default 224x224 one (weights have no size)."""
    ours = keras_written[variant][0]
    for file in ("keras2_weights.h5", "keras2_model.h5"):
        path = keras_file(keras_written, variant, file)
        assert {"Conv/BatchNorm", "Logits"} & set(read_weights_file(path)) == (
            {"Conv/BatchNorm", "Logits"} if ours.include_top else {"Conv/BatchNorm"})
        loaded = CLASSES[variant.arch](weights=path, **variant.options())
        assert loaded.config == {**ours.config, "resolution": 224}
        for key, array in ours.params.items():
            np.testing.assert_array_equal(loaded.params[key], array, err_msg=key)


@pytest.mark.parametrize("variant", SLICE[:1], ids=str)
def test_archive_config_naming_code_is_data_only(keras_written, variant, tmp_path,
                                                 monkeypatch) -> None:
    """A .keras whose config.json names a Lambda layer (marshalled code) and a custom object from
    an importable module: loaded for its weights, nothing imported or run."""
    ours = keras_written[variant][0]
    sentinel, module = tmp_path / "ran", "mnp_test_evil_config_module"
    (tmp_path / f"{module}.py").write_text(f"open({str(sentinel)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = compile(f"open({str(sentinel)!r}, 'w').close()", "lambda", "exec")
    path = tmp_path / "tampered.keras"
    original = keras_file(keras_written, variant, "keras3.keras")
    with zipfile.ZipFile(original) as source, zipfile.ZipFile(path, "w") as archive:
        config = json.loads(source.read("config.json"))
        config["config"]["layers"] += [
            {"module": "keras.layers", "class_name": "Lambda", "name": "evil_lambda",
             "config": {"name": "evil_lambda", "function": {
                 "class_name": "__lambda__", "config": {
                     "code": base64.b64encode(marshal.dumps(code)).decode(), "defaults": None,
                     "closure": None}}}},
            {"module": module, "class_name": "Evil", "registered_name": "Custom>Evil",
             "name": "evil", "config": {}}]
        archive.writestr("config.json", json.dumps(config))
        for member in ("metadata.json", "model.weights.h5"):
            archive.writestr(member, source.read(member))
    loaded = mnp.load(path, resolution=RESOLUTION)
    for key, array in ours.params.items():
        np.testing.assert_array_equal(loaded.params[key], array, err_msg=key)
    assert not sentinel.exists() and module not in sys.modules


def record(label: str, variant: Variant, error: float, bound: float, rtol: float) -> None:
    """Keep the worst error per (format, family) cell, and every case above the parity rule."""
    WORST[label, variant.arch] = max(WORST.get((label, variant.arch), 0.0), error)
    if error > rtol:
        ABOVE_RULE.append(f"{label}, {variant}: {error:.2e} > parity {rtol:.2e} "
                          f"(one-ulp reach {bound:.2e})")


def print_table() -> None:
    """Worst |ours - Keras| / (1 + max |output|) per format and family."""
    families = [arch for arch in KERAS_MODELS if any(a == arch for _, a in WORST)]
    print(f"\n{'worst error / scale':26}" + "".join(f"{arch:>11}" for arch in families))
    for label in FILES.values():
        cells = [f"{WORST[label, arch]:11.2e}" if (label, arch) in WORST else f"{'-':>11}"
                 for arch in families]
        print(f"{label:26}" + "".join(cells))
    print("\n".join(["above the parity rule, within the one-ulp reach:", *sorted(set(ABOVE_RULE))]
                    if ABOVE_RULE else ["every case within the parity rule"]))
