"""The notebooks' exercise checks: each passes its reference answer, rejects wrong ones, and
treats None (or a stub returning None) as "not answered yet"."""

from __future__ import annotations

import json
import math
import re
import sys

import numpy as np
import pytest
from helpers.data import ROOT

sys.path.insert(0, str(ROOT / "notebooks"))
import course  # noqa: E402
import solutions  # noqa: E402

from mobilenet_np.families.v1 import SLIM as SLIM_V1  # noqa: E402
from mobilenet_np.int8.fixedpoint import Requantize  # noqa: E402

PROFILE = [{"kind": "depthwise_conv2d", "seconds": 0.3}, {"kind": "pointwise_conv2d", "seconds": 0.6},
           {"kind": "conv2d", "seconds": 0.1}]
CONTEXT = {("08", 2): {"profile": PROFILE}}


def stub(*args):
    """What a code exercise's cell holds before the student writes it."""
    return None


# At least one wrong answer per exercise: a typical slip, not just garbage.
WRONG = {
    ("01", 1): [(1, 112, 112, 16), (1, 113, 113, 3), "113"],
    ("01", 2): [(2 * 10 * 12, 100), (96, 25)],
    ("01", 3): [lambda size, k, s: (k // 2, k // 2),  # symmetric: wrong at stride 2 on even sizes
                lambda size, k, s: (k - 1 - (k - 1) // 2, (k - 1) // 2)],  # extra pixel first
    ("01", 4): [lambda x, kh, kw: np.lib.stride_tricks.sliding_window_view(
        x, (kh, kw), axis=(1, 2)).reshape(-1, kh * kw * x.shape[-1])],  # channels before taps
    ("02", 1): [3 * 3 * 64 * 128 * 56 * 56, 64 * 128 * 56 * 56],
    ("02", 2): [0.95, 8.0, 23.8],
    ("02", 3): [0.95, 0.9],
    ("02", 4): [lambda x, k: x * k.sum(axis=(0, 1))[:, 0]],  # all taps on the same pixel
    ("02", 5): [lambda k: k.transpose(0, 1, 3, 2),  # right for M = 1 only
                lambda k: k.transpose(0, 1, 3, 2).reshape(*k.shape[:2], 1, -1)],  # order m*C + c
    ("03", 1): [(28, 28, 256), (56, 56, 64)],
    ("03", 2): [lambda z: np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)],  # overflows
    ("03", 3): [lambda k, g, b, m, v: (k * (g / np.sqrt(v + 1e-3))[None, None, None, :],
                                       b - m * g / np.sqrt(v + 1e-3)),  # last axis: (3, 3, C, C)
                lambda k, g, b, m, v: (k * (g / np.sqrt(v + 1e-3))[:, None], b)],  # bias forgotten
    ("04", 1): [lambda: 1e-7, lambda: np.finfo(np.float64).eps, lambda: np.float32(2.0**-24)],
    ("04", 2): ["conv_dw_7", "conv_dw_7_relu", "conv_pw_7", "conv_dw_2"],  # before, after
    ("05", 1): [2.0, 1.75, 3.5],
    ("05", 2): [(1.0, 224),  # one pair, not a set of them
                {(0.25, 128)},  # the best top-1 per MAC: the smallest model alone
                set(SLIM_V1),  # all 16: two of them are beaten on both axes
                solutions.SOLUTIONS[("05", 2)]() - {(0.25, 128)}],  # the smallest one forgotten
    ("05", 3): [lambda dk, m, n, df, a, r: a * a * r * r * (dk * dk * m * df * df + m * n * df * df)],
    ("05", 4): [4253864, 1_342_536],
    ("06", 1): [lambda h, w, c, t, co, k, s: h * w * (c * t * c + k * k * c * t + c * t * co)],
    ("06", 2): [lambda x, e, d, p: ops_block(x, e, d, p, linear=False),
                lambda x, e, d, p: ops_block(x, e, d, p, padding="symmetric")],
    ("06", 3): [0.0306, 0.5],
    ("07", 1): [lambda x: x / (1 + np.exp(-x)), lambda x: x * np.clip(x + 3, 0, 6)],
    ("07", 2): [lambda x, ws, bs, we, be: x * (1 / (1 + np.exp(-(np.maximum(
        x.mean(axis=(1, 2)) @ ws + bs, 0) @ we + be))))[:, None, None, :]],  # sigmoid, not hard
    ("07", 3): [120 * 32, 40 * 10 * 2],
    ("08", 1): [lambda h, w, c, k, s: 2 * k * k / 8,  # ignores stride and weights
                lambda h, w, c, k, s: k * k * math.ceil(h / s) ** 2 * c / (
                    4 * (h * w * c + math.ceil(h / s) ** 2 * c + k * k * c))],  # MACs not FLOPs
    ("08", 2): [0.6, 0.03],
    ("09a", 1): [lambda x, s, z: np.clip(np.floor(x / s + 0.5) + z, -128, 127).astype(np.int8),  # half up
                lambda x, s, z: np.clip(np.round(x / s) + z, -128, 127).astype(np.int8),  # divides
                lambda x, s, z: (np.rint(x * (np.float32(1) / np.float32(s))).astype(np.int64)
                                 + z).astype(np.int8),  # cast before clipping: wraps around
                lambda x, s, z: np.clip(np.rint(x * (np.float32(1) / np.float32(s))), -128,
                                        127).astype(np.int8)],  # zero point forgotten
    ("09a", 2): [lambda s, z: (z, z + int(np.floor(6 / s + 0.5))),  # not kept inside int8
                lambda s, z: (max(-128, z), min(127, round(6 / s))),  # zero point forgotten
                lambda s, z: (max(-128, z), min(127, z + round(float(np.float32(6) / np.float32(s)))))],
    ("09a", 3): [2**31 // (128 * 128), (2**31 - 1) // (255 * 128), (2**31 - 1) // (127 * 127), 1024],
    ("09a", 4): [lambda a, m, s, z: np.clip(np.round(a * (m * 2.0 ** (s - 31))) + z, -128,
                                           127).astype(np.int8),  # one float rounding
                lambda a, m, s, z: np.clip(((a * m + (1 << (30 - s))) >> (31 - s)) + z, -128,
                                           127).astype(np.int8),  # single rounding
                lambda a, m, s, z: Requantize(m, s, z, rounding="double").apply(a),  # ties away
                lambda a, m, s, z: Requantize(m, s, 0, rounding="double_up").apply(a)],  # no zp
    ("09a", 5): [196_608, 197_376, 67_584],
    ("09b", 1): [64 * 64 * 8 * 16,  # the layer's MACs: a sum per output value, not per pixel
                 64 * 64 * 16,  # one per output value
                 64 * 64 * 7,  # K - 1 additions per window: the question counts K
                 32 * 32 * 8],  # the output taken as 32 x 32
    ("11", 1): [lambda f, k, c: f.mean(axis=(1, 2)) @ k[:, c],  # the pooled logit, not a map
                lambda f, k, c: f @ k,  # every class at once
                lambda f, k, c: f[..., c],  # channel c of the features
                lambda f, k, c: f.sum(axis=-1) * k[:, c].sum()],  # right shape, wrong sum
    ("11", 2): [lambda cam: cam,  # the cell's term, not divided by the H*W of the mean
                lambda cam: cam - cam.mean(),  # relative to the average cell
                lambda cam: cam / cam.shape[0]],  # divided by H only
    ("10", 1): [lambda h, w, c, hid, co, a, k, s: uib_slip(h, w, c, hid, co, a, k, s, "no start"),
                lambda h, w, c, hid, co, a, k, s: uib_slip(h, w, c, hid, co, a, k, s, "wide start"),
                lambda h, w, c, hid, co, a, k, s: uib_slip(h, w, c, hid, co, a, k, s, "first"),
                lambda h, w, c, hid, co, a, k, s: uib_slip(h, w, c, hid, co, a, k, s, "late")],
    ("10", 2): [lambda q, k, v, heads: mqa_slip(q, k, v, heads, "head order"),
                lambda q, k, v, heads: mqa_slip(q, k, v, heads, "no scale"),
                lambda q, k, v, heads: mqa_slip(q, k, v, heads, "softmax over queries"),
                lambda q, k, v, heads: mqa_slip(q, k, v, heads, "scale by heads * d")],
}

# Answers that are right by the question's own statement, written another way: each must pass.
RIGHT = {
    ("09a", 1): [lambda x, s, z: np.clip(np.round(x * (np.float32(1) / np.float32(s))) + z, -128,
                                        127).astype(np.int8)],  # np.round: halves to even too
    ("09a", 2): [lambda s, z: (max(-128, z), min(127, z + math.floor(
        float(np.float32(6) / np.float32(s)) + 0.5)))],  # floor(v + 0.5) in float64, v > 0
    ("05", 2): [sorted(solutions.SOLUTIONS[("05", 2)]()),  # a list, in any order
                [(int(a) if a == 1 else a, r) for a, r in solutions.SOLUTIONS[("05", 2)]()]],
    ("11", 1): [lambda f, k, c: np.einsum("nhwc,c->nhw", f, k[:, c]),
                lambda f, k, c: (f * k[:, c]).sum(axis=-1)],
    ("11", 2): [lambda cam: cam / (cam.shape[0] * cam.shape[1]),
                lambda cam: np.asarray(cam, np.float64) / np.size(cam)],
    ("10", 1): [lambda h, w, c, hid, co, a, k, s: float(uib_by_layers(h, w, c, hid, co, a, k, s))],
    ("10", 2): [lambda q, k, v, heads: __import__("mobilenet_np").reference_v4.multi_query_attention(
        q, k, v, heads),  # loops
                lambda q, k, v, heads: mqa_per_head(q, k, v, heads)],  # a head at a time
}


def uib_slip(h, w, c_in, hidden, c_out, start, mid, stride, slip):
    """One UIB's MACs with one deliberate slip: the start depthwise left out ("no start"), run
    on the hidden channels ("wide start"), the stride always on the first depthwise ("first"),
    or the expansion always at the output size ("late")."""
    ho, wo = math.ceil(h / stride), math.ceil(w / stride)
    first = slip == "first" or not mid  # the depthwise that takes the stride is the start one
    start_size = ho * wo if start and first else h * w
    size = ho * wo if slip == "late" or (start and first) else h * w
    start_macs = {"no start": 0, "wide start": start_size * start**2 * hidden}.get(
        slip, start_size * start**2 * c_in)
    return (start_macs + size * c_in * hidden + ho * wo * mid**2 * hidden
            + ho * wo * hidden * c_out)


def uib_by_layers(h, w, c_in, hidden, c_out, start, mid, stride):
    """The same count walked layer by layer, each layer at the size it sees."""
    total = 0
    if start:
        s = 1 if mid else stride
        h, w = -(-h // s), -(-w // s)
        total += h * w * c_in * start * start
    total += h * w * c_in * hidden
    if mid:
        h, w = -(-h // stride), -(-w // stride)
        total += h * w * hidden * mid * mid
    return total + h * w * hidden * c_out


def mqa_slip(q, k, v, heads, slip):
    """Multi-query attention with one deliberate slip."""
    n, length, _ = q.shape
    d = k.shape[-1]
    q = (q.reshape(n, length, d, heads).transpose(0, 1, 3, 2) if slip == "head order"
         else q.reshape(n, length, heads, d))
    scale = {"no scale": 1.0, "scale by heads * d": np.sqrt(heads * d)}.get(slip, np.sqrt(d))
    scores = np.einsum("nlhd,nsd->nhls", q, k) / scale
    axis = 2 if slip == "softmax over queries" else 3
    weights = np.exp(scores - scores.max(axis=axis, keepdims=True))
    weights /= weights.sum(axis=axis, keepdims=True)
    return np.einsum("nhls,nsd->nlhd", weights, v).reshape(n, length, -1)


def mqa_per_head(q, k, v, heads):
    """Right, written another way: one head at a time, the textbook softmax (no max subtracted)."""
    d = k.shape[-1]
    outs = []
    for h in range(heads):
        scores = q[:, :, h * d:(h + 1) * d] @ k.transpose(0, 2, 1) / math.sqrt(d)  # (N, L, S)
        weights = np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)
        outs.append(weights @ v)  # (N, L, dv)
    return np.concatenate(outs, axis=-1)


def ops_block(x, expand, depthwise, project, linear=True, padding="correct"):
    """A stride-2 V2 block with one deliberate slip: a ReLU6 after the projection, or (1, 1) pads."""
    from mobilenet_np import ops
    y = ops.relu6(ops.pointwise_conv2d(x, expand))
    y = ops.zero_pad(y, ((1, 1), (1, 1)) if padding == "symmetric" else
                     ((0, 1), (0, 1)) if x.shape[1] % 2 == 0 else ((1, 1), (1, 1)))
    y = ops.relu6(ops.depthwise_conv2d(y, depthwise, stride=2, padding="valid"))
    out = ops.pointwise_conv2d(y, project)
    return out if linear else ops.relu6(out)


@pytest.fixture(autouse=True)
def answers_from_cells(monkeypatch):
    monkeypatch.delenv(course.SOLUTIONS_SWITCH, raising=False)


def test_every_exercise_has_a_check_a_solution_and_a_wrong_answer():
    assert set(course.CHECKS) == set(solutions.SOLUTIONS) == set(WRONG)
    kinds = [check.kind for check in course.CHECKS.values()]
    assert kinds.count("code") >= len(kinds) / 2, "at least half the exercises ask for code"


def test_every_notebook_runs_each_of_its_checks():
    for notebook in {key[0] for key in course.CHECKS}:
        path = next((ROOT / "notebooks").glob(f"{notebook}_*.ipynb"))
        source = "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])
        used = {int(n) for n in re.findall(r"ex\.check\((\d+),", source)}
        assert used == {n for nb, n in course.CHECKS if nb == notebook}, path.name


@pytest.mark.parametrize("key", sorted(course.CHECKS), ids=lambda key: f"{key[0]}.{key[1]}")
def test_reference_answer_passes(key, capsys):
    course.Exercises(key[0]).check(key[1], solutions.SOLUTIONS[key](**CONTEXT.get(key, {})),
                                   **CONTEXT.get(key, {}))
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("key", sorted(course.CHECKS), ids=lambda key: f"{key[0]}.{key[1]}")
def test_wrong_answers_raise_with_a_hint(key):
    for wrong in WRONG[key]:
        with pytest.raises(AssertionError, match="Hint: ") as raised:
            course.Exercises(key[0]).check(key[1], wrong, **CONTEXT.get(key, {}))
        reference = solutions.SOLUTIONS[key](**CONTEXT.get(key, {}))
        if not callable(reference):  # the answer itself is never given away on a wrong try
            assert repr(reference) not in str(raised.value).split("Hint: ")[0].split(": ", 1)[1]


@pytest.mark.parametrize("key", sorted(RIGHT), ids=lambda key: f"{key[0]}.{key[1]}")
def test_other_right_answers_pass(key, capsys):
    for right in RIGHT[key]:
        course.Exercises(key[0]).check(key[1], right, **CONTEXT.get(key, {}))
        assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("key", sorted(course.CHECKS), ids=lambda key: f"{key[0]}.{key[1]}")
def test_unanswered_is_a_visible_note(key, capsys):
    answer = stub if course.CHECKS[key].kind == "code" else None
    course.Exercises(key[0]).check(key[1], answer, **CONTEXT.get(key, {}))
    assert "not answered yet" in capsys.readouterr().out


def test_solutions_switch_replaces_the_cell_answer(monkeypatch, capsys):
    monkeypatch.setenv(course.SOLUTIONS_SWITCH, "1")
    course.Exercises("01").check(1, None)
    assert "Exercise 01.1: correct." in capsys.readouterr().out


def test_find_weights_looks_where_the_tests_look(tmp_path, monkeypatch):
    """$MOBILENET_NP_PRETRAINED alone when set; else ../shared/weights, our cache, Keras's."""
    name, root, home = course.PRETRAINED_NAME, tmp_path / "repo", tmp_path / "home"
    monkeypatch.delenv(course.PRETRAINED_SWITCH, raising=False)
    monkeypatch.setenv("MOBILENET_NP_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(home))
    assert course.find_weights(root) is None
    for folder in (home / ".keras" / "models", tmp_path / "cache", tmp_path / "shared" / "weights"):
        folder.mkdir(parents=True)
        (folder / name).write_bytes(b"")
        assert course.find_weights(root) == folder / name  # each place beats the ones before
    monkeypatch.setenv(course.PRETRAINED_SWITCH, str(tmp_path / "elsewhere.h5"))
    assert course.find_weights(root) is None  # named and missing: random, never another file
    (tmp_path / "elsewhere.h5").write_bytes(b"")
    assert course.find_weights(root) == tmp_path / "elsewhere.h5"


def test_find_real_tflite_looks_where_the_tests_look(tmp_path, monkeypatch):
    """$MOBILENET_NP_REAL_TFLITE alone when set; else ../shared/real-tflite, then our cache."""
    name, root = course.UINT8_FILE, tmp_path / "repo"
    monkeypatch.delenv(course.REAL_TFLITE_SWITCH, raising=False)
    monkeypatch.setenv("MOBILENET_NP_HOME", str(tmp_path / "cache"))
    assert course.find_real_tflite(root=root) is None
    for folder in (tmp_path / "cache", tmp_path / "shared" / "real-tflite"):
        folder.mkdir(parents=True)
        (folder / name).write_bytes(b"")
        assert course.find_real_tflite(root=root) == folder / name  # each place beats the one before
    monkeypatch.setenv(course.REAL_TFLITE_SWITCH, str(tmp_path / "elsewhere"))
    assert course.find_real_tflite(root=root) is None  # named and missing: never another file
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / name).write_bytes(b"")
    assert course.find_real_tflite(root=root) == tmp_path / "elsewhere" / name


def test_photo_sets_are_disjoint():
    """Each evaluation set comes from one picture and its calibration crops from the other."""
    pytest.importorskip("matplotlib", reason="the sample pictures ship with matplotlib")
    sets = course.disjoint_photo_sets(size=32, calibrate=3, crops=2)
    assert [name for name, _, _ in sets] == list(course.SAMPLE_PICTURES)
    (_, calibration_a, evaluation_a), (_, calibration_b, evaluation_b) = sets
    assert calibration_a.shape == (3, 32, 32, 3) and evaluation_a.shape == (3, 32, 32, 3)
    # model 1 is calibrated on crops of picture 2, which is what model 2 is evaluated on
    paths = course.sample_picture_paths()
    assert np.array_equal(calibration_a, mnp_preprocess(course.picture_crops(paths[1], 3, seed=10, size=32)))
    assert np.array_equal(calibration_b, mnp_preprocess(course.picture_crops(paths[0], 3, seed=11, size=32)))


def mnp_preprocess(pixels):
    import mobilenet_np as mnp

    return mnp.preprocess_input(pixels)


# What each notebook prints, without the real weights, at the conclusions that need them.
RANDOM_NOTES = {
    "03_mobilenet_forward.ipynb": 1,  # the notice; its figures' titles say RANDOM
    "09a_integer_only_inference.ipynb": 3,  # the notice, the agreement, the summary
    "09b_two_integer_schemes.ipynb": 6,  # the notice, ranges, gains, dead channels, agreement, summary
    "11_where_does_it_look.ipynb": 2,  # the notice, the maps
}


# Sections that need Google's hosted uint8 file say so, each, when it is absent.
NEEDS_FILE_NOTES = {"09b_two_integer_schemes.ipynb": 4}  # the file, bit for bit, cross term, spans


@pytest.mark.parametrize("name", sorted(RANDOM_NOTES))
def test_without_real_weights_the_notebooks_say_so(name, tmp_path, monkeypatch):
    """Run as committed with the weights pointed at a missing file (and Google's .tflite files
    at an empty folder): every weights-dependent conclusion is labelled as random-weight (none
    printed as if trained), no assert that needs trained weights runs, and every section that
    needs a .tflite file says so instead of concluding anything."""
    nbformat = pytest.importorskip("nbformat", reason="runs notebooks: pip install -e '.[test]'")
    nbclient = pytest.importorskip("nbclient", reason="runs notebooks: pip install -e '.[test]'")
    pytest.importorskip("matplotlib", reason="the notebooks draw with matplotlib")
    monkeypatch.setenv(course.PRETRAINED_SWITCH, str(tmp_path / "missing.h5"))
    monkeypatch.setenv(course.REAL_TFLITE_SWITCH, str(tmp_path))
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.outputs)
    assert "Using the real ImageNet weights" not in printed
    notes = printed.count("this notebook runs on seeded random") + printed.count(course.RANDOM_WEIGHTS)
    assert notes == RANDOM_NOTES[name], printed
    assert printed.count("This section needs Google's hosted uint8 model") == NEEDS_FILE_NOTES.get(name, 0)


def test_every_rejection_names_an_answer_call_that_works(capsys):
    """08.2's answer needs the run's profile: the rejection names that call, and ex.answer(2)
    without it says how to call it instead of failing."""
    with pytest.raises(AssertionError, match=r"ex\.answer\(2, profile=profile\)"):
        course.Exercises("08").check(2, 0.6, profile=PROFILE)
    course.Exercises("08").answer(2)
    assert "ex.answer(2, profile=profile)" in capsys.readouterr().out
    course.Exercises("08").answer(2, profile=PROFILE)
    assert float(capsys.readouterr().out) == pytest.approx(0.3)


def test_receptive_fields_match_what_perturbing_the_input_reaches():
    """The counted field of conv_dw_3 (V1, rows 3x3 s2, 3x3, 3x3 s2, 3x3) equals the number of
    input rows whose change reaches one output row in the middle, measured by running the model."""
    import mobilenet_np as mnp

    model = mnp.MobileNet(alpha=0.25, resolution=96, weights=None, seed=2)
    rows = {name: (field, jump) for name, field, jump in course.receptive_fields(model.layers)}
    assert [rows[name] for name in ("conv1", "conv_dw_1", "conv_dw_2", "conv_dw_3")] == [
        (3, 2), (7, 2), (11, 4), (19, 4)]
    x = np.random.default_rng(0).uniform(-1, 1, (1, 96, 96, 3)).astype(np.float32)
    base = model.forward(x, capture=True)[1]["conv_dw_3"][0, 12]  # output row 12 of 24
    reached = []
    for row in range(96):
        nudged = x.copy()
        nudged[0, row] = -nudged[0, row]
        if not np.array_equal(model.forward(nudged, capture=True)[1]["conv_dw_3"][0, 12], base):
            reached.append(row)
    assert reached == list(range(reached[0], reached[0] + rows["conv_dw_3"][0]))


def test_peak_live_values_counts_the_saved_residual():
    """a -> b -> c -> add(a): while b and c run, a's output is kept for the add."""
    from mobilenet_np.layers import Layer

    layers = [Layer("a", "relu", (4, 4, 2), (4, 4, 2)), Layer("b", "relu", (4, 4, 2), (4, 4, 8)),
              Layer("c", "relu", (4, 4, 8), (4, 4, 2)),
              Layer("add", "add", (4, 4, 2), (4, 4, 2), source="a")]
    # at b: its input (a's output, also the saved one: counted once) 32 + its output 128 = 160;
    # at c: input 128 + output 32 + saved a 32 = 192
    assert course.peak_live_values(layers) == (192, "c")
    assert course.peak_block_values(mnp_blocks(layers)) == (64, "one")


def mnp_blocks(layers):
    from mobilenet_np.layers import Block

    return [Block("one", "inverted_residual", tuple(layers))]


def test_full_attention_cost_with_one_head_and_no_downsampling_is_the_counters():
    """Multi-query attention with one head and keys at every position IS multi-head attention:
    there ``course.mha_macs`` must equal the package's MQA counter, layer by layer."""
    from mobilenet_np.cost import layer_macs
    from mobilenet_np.layers import LayerBuilder

    builder = LayerBuilder((6, 5, 16))
    with builder.block("attention", "attention"), builder.unit("attention"):
        for heads, kv_size in ((1, (6, 5)), (3, (6, 5)), (2, (3, 3))):
            builder.layer(f"attn_{heads}", "mobile_mqa", (6, 5, 16), kernel=3,
                          stride=1 if kv_size == (6, 5) else 2, padding=((1, 1), (1, 1)),
                          options={"heads": heads, "key_dim": 8, "value_dim": 4,
                                   "kv_size": kv_size, "epsilon": 1e-5})
    one, several, downsampled = builder.layers
    assert course.mha_macs(one) == layer_macs(one)
    assert course.mha_macs(several) > layer_macs(several)  # own K and V per head
    assert course.mha_macs(downsampled) > layer_macs(downsampled)


def test_the_uib_blocks_of_the_lesson_are_the_packages():
    """``course.uib_blocks`` builds what MobileNetV4-Conv-Small holds: its blocks.2.1 (an
    inverted residual, 14x14x96, hidden 192) has the same kinds, shapes and MACs."""
    from mobilenet_np.cost import layer_macs
    from mobilenet_np.registry import get_family

    real = next(b for b in get_family("v4-conv-small").blocks() if b.name == "blocks.2.1")
    lesson = course.uib_blocks(0, 3, (14, 14, 96), expansion=2, filters=96)[-1]
    shape = [(layer.kind, layer.input_shape, layer.output_shape, layer_macs(layer))
             for layer in real.layers]
    assert [(layer.kind, layer.input_shape, layer.output_shape, layer_macs(layer))
            for layer in lesson.layers] == shape


def test_copy_target_sits_half_a_page_from_its_source():
    """The roof copies avoid 4K aliasing: destination 2 KiB from the source modulo 4 KiB."""
    for size in (2**16, 1000, 16 * 2**10):
        source = np.ones(size, np.float32)
        target = course.copy_target(source)
        assert target.shape == source.shape and target.dtype == np.float32
        assert (target.ctypes.data - source.ctypes.data) % 4096 == 2048
