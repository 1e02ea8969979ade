"""The family registry: a new family through its record alone; blocks that survive expansion;
block ratios equal to their closed form; a broken fused step that fails loudly."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from helpers.bounds import roundoff_bound

from mobilenet_np import (
    InputError,
    MobileNet,
    MobileNetV3Small,
    Network,
    UnsupportedError,
    fused,
    plan,
    reference,
)
from mobilenet_np.blocks import ConvNames, classifier_top, conv_unit, inverted_residual
from mobilenet_np.cli import main
from mobilenet_np.cost import network_cost, separable_blocks
from mobilenet_np.files import save_npz
from mobilenet_np.layers import LayerBuilder, check_options
from mobilenet_np.registry import FAMILIES, Family, Option, WeightFiles, register
from mobilenet_np.stored import kernel_shape, top_options
from mobilenet_np.weights import convert

pytestmark = pytest.mark.numerical  # .ci/run runs these with other BLAS kernels too

VARIANTS = [("v1", {}), ("v1", {"alpha": 0.5, "depth_multiplier": 2}), ("v2", {}),
            ("v2", {"alpha": 1.4}), ("v3-small", {}), ("v3-small", {"minimalistic": True}),
            ("v3-large", {}), ("v3-large", {"alpha": 0.75})]


@pytest.mark.parametrize(("arch", "options"), VARIANTS)
def test_every_block_ratio_is_its_closed_form(arch, options) -> None:
    """Exact arithmetic: separable / standard = m (1/N + 1/Dk^2) for every block, where N is the
    projection's output (never squeeze-excite's 1x1 conv) and M the depthwise's input."""
    blocks = FAMILIES[arch].blocks(**options)
    pairs = separable_blocks(blocks)
    assert len(pairs) == sum(block.kind in ("separable", "inverted_residual") for block in blocks)
    for pair, block in zip(pairs, [b for b in blocks if b.conv("depthwise")], strict=True):
        projection = block.conv("pointwise", "project")
        assert pair.out_channels == projection.output_shape[-1]
        assert "squeeze_excite" not in projection.name
        exact = Fraction(pair.separable_macs, pair.standard_macs)
        m = pair.depth_multiplier
        assert exact == m * (Fraction(1, pair.out_channels) + Fraction(1, pair.kernel**2))


@pytest.mark.parametrize("arch", ["v2", "v3-small"])
def test_compare_prints_ratios_equal_to_their_formulas(capsys, arch) -> None:
    assert main(["compare", "--arch", arch]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.startswith("block_")]
    assert len(rows) == len(separable_blocks(FAMILIES[arch].blocks()))
    assert all(row[-2] == row[-1] for row in rows)  # "ratio" and "formula" columns
    assert main(["compare", "--arch", arch, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    whole, pairs = report["whole_network"], report["blocks_only"]
    assert whole["separable_macs"] == network_cost(FAMILIES[arch].layers())["total_macs"]
    assert whole["standard_macs"] - whole["separable_macs"] == \
        pairs["standard_macs"] - pairs["separable_macs"]  # only the pairs are swapped


def test_every_layer_knows_its_block_and_role() -> None:
    model = MobileNetV3Small(weights=None)
    assert [b.kind for b in model.blocks] == ["stem"] + ["inverted_residual"] * 11 + ["head"]
    block = model.blocks[10]  # expanded_conv_9: expand, depthwise (5x5/1), SE, project, add
    assert [role for role, _ in block.units()] == ["expand", "depthwise", "squeeze_excite",
                                                   "project", "residual"]
    assert all(layer.block == block.name for layer in block.layers)
    assert model.layers == [layer for b in model.blocks for layer in b.layers]


def toy_build(alpha: float, resolution, include_top: bool, pooling, classes: int,
              squeeze: bool) -> list:
    """Three blocks: a strided stem, one inverted residual (with SE or not), a dense top."""
    height, width = check_options(alpha, resolution, pooling, classes)
    builder, names = LayerBuilder((height, width, 3)), ConvNames(bn="_bn", act="_relu")
    channels = int(16 * alpha)
    with builder.block("stem", "stem"):
        conv_unit(builder, "conv", "stem", "conv2d", 3, 2, channels, "relu6", names)
    with builder.block("block_1", "inverted_residual"):
        inverted_residual(builder, "block_1_", names, 4 * channels, 3, 1, channels, "hard_swish",
                          squeeze_to=8 if squeeze else None)
    with builder.block("head", "head"):
        classifier_top(builder, include_top, pooling, lambda: builder.dense("logits", classes),
                       "probabilities")
    return builder.blocks


TOY = Family(
    name="toy", title="ToyNet", build=toy_build,
    options={"squeeze": Option(False, "squeeze-and-excite in the block")},
    weight_files=WeightFiles("https://example.invalid/", (1.0,), (32,),
                             lambda alpha, resolution, include_top, squeeze: "toy.h5"),
    recognise=lambda stored: None if kernel_shape(stored, "block_1_project") is None else {
        "alpha": kernel_shape(stored, "stem")[-1] / 16,
        "squeeze": "block_1_squeeze_excite_conv" in stored, **top_options(stored, "logits")},
    preprocessing="preprocess_input's [-1, 1]")


@pytest.fixture
def toy():
    """The toy family, registered for one test (nothing else in the package is touched)."""
    register(TOY)
    yield TOY
    del FAMILIES["toy"]


def test_a_new_family_through_the_registry_alone(toy, tmp_path, capsys) -> None:
    model = Network(toy, weights=None, resolution=40, classes=10, squeeze=True)
    x = model.random_input(3)
    probs = model.forward(x)
    assert probs.shape == (3, 10) and np.abs(probs[0] - probs[1]).max() > 1e-3
    assert np.abs(model.predict(x) - probs).max() <= roundoff_bound(model, x)
    assert [unit.op for unit in model.plan] == ["conv", "conv", "depthwise", "squeeze_excite",
                                                "conv", "add", "head"]
    # its weights are recognised from their shapes, converted and loaded back
    save_npz(model.params, tmp_path / "toy.npz")
    assert convert(tmp_path / "toy.npz", tmp_path / "copy.npz") == {
        "arch": "toy", "alpha": 1.0, "squeeze": True, "include_top": True, "classes": 10}
    loaded = Network(toy, weights=tmp_path / "copy.npz", resolution=40, classes=10, squeeze=True)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for command in (["summary", "--json"], ["compare", "--json"],
                    ["profile", "--fused", "--repeats", "1", "--json"]):
        assert main([*command, "--arch", "toy", "--resolution", "40", "--squeeze"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report
    assert main(["summary", "--arch", "v1", "--squeeze"]) == 2
    assert "--squeeze exists for --arch toy only" in capsys.readouterr().err


def test_a_bug_in_a_fused_step_is_an_error_not_a_slow_path(monkeypatch) -> None:
    model = MobileNet(alpha=0.25, resolution=64, weights=None)

    def broken(self, x):
        raise RuntimeError("planted bug")

    monkeypatch.setattr(fused.Depthwise, "__call__", broken)
    with pytest.raises(RuntimeError, match="planted bug"):
        model.predict(model.random_input(2))


def test_a_role_without_a_rule_runs_its_layers_unfused_and_a_misshapen_unit_is_refused(
        monkeypatch) -> None:
    """A unit role the plan has no rule for runs layer by layer (same numbers, to round-off);
    a unit that claims a rule but does not fit it is refused when the model is built."""
    monkeypatch.delitem(plan.UNIT_RULES, "squeeze_excite")
    model = MobileNetV3Small(weights=None, resolution=64)
    assert "layers" in [unit.op for unit in model.plan]
    x = model.random_input(2)
    assert np.abs(model.predict(x) - model.forward(x)).max() <= roundoff_bound(model, x)
    monkeypatch.setitem(plan.UNIT_RULES, "squeeze_excite", plan.conv_unit)
    with pytest.raises(UnsupportedError, match="runs a conv unit as"):
        MobileNetV3Small(weights=None, resolution=64)


def test_minimalistic_download_asks_for_the_minimalistic_file(tmp_path, monkeypatch,
                                                               capsys) -> None:
    """Offline: the URL it tries names the minimalistic file; a cached file under that name
    is checked against the MD5 Keras publishes for it."""
    monkeypatch.setenv("MOBILENET_NP_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MOBILENET_NP_WEIGHTS_URL", "http://127.0.0.1:9/")  # nothing listens
    name = "weights_mobilenet_v3_large_minimalistic_224_1.0_float.h5"
    assert main(["weights", "download", "--arch", "v3-large", "--minimalistic"]) == 2
    assert f"could not download http://127.0.0.1:9/{name}" in capsys.readouterr().err
    (tmp_path / name).write_bytes(b"not the official file")
    assert main(["weights", "download", "--arch", "v3-large", "--minimalistic"]) == 2
    assert "is not the published 675e7b876c45c57e9e63e6d90a36599c" in capsys.readouterr().err
    assert main(["weights", "download", "--arch", "v1", "--minimalistic"]) == 2
    assert "--minimalistic exists for --arch v3-large, v3-small only" in capsys.readouterr().err


def test_compare_family_refuses_options_it_would_ignore(capsys) -> None:
    assert main(["compare", "--family", "--arch", "v2", "--alpha", "0.5"]) == 2
    assert "takes no --arch, --alpha" in capsys.readouterr().err


@pytest.mark.parametrize("kernel", ["hard_sigmoid", "hard_swish"])
def test_loop_twins_check_their_inputs_like_the_vectorised_kernels(kernel) -> None:
    with pytest.raises(InputError, match="must hold integers or floats"):
        getattr(reference, kernel)(np.array(["a"]))
    x = np.ones((1, 2, 2, 3), np.float32)
    with pytest.raises(ValueError, match="do not fit"):
        reference.squeeze_excite(x, np.ones((4, 2)), np.ones(2), np.ones((2, 3)), np.ones(3))
