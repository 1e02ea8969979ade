"""The cost counters against published numbers, Keras's live counts and an independent formula."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from helpers.gold import keras_mobilenet

from mobilenet_np.cli import main
from mobilenet_np.cost import conv_mobilenet_cost, network_cost, separable_blocks, share_by_type
from mobilenet_np.families.v1 import V1

PAIRS = [(a, r) for a in (1.0, 0.75, 0.5, 0.25) for r in (224, 192, 160, 128)]

# The paper's Table 1, written out again here on purpose (not read from architectures.py):
# (stride, input channels, output channels) of the 13 depthwise-separable blocks.
PAPER_BLOCKS = [(1, 32, 64), (2, 64, 128), (1, 128, 128), (2, 128, 256), (1, 256, 256),
                (2, 256, 512)] + [(1, 512, 512)] * 5 + [(2, 512, 1024), (1, 1024, 1024)]


def v1_layers(alpha: float = 1.0, resolution: int = 224, **options):
    return V1.layers(alpha=alpha, resolution=resolution, **options)


def paper_macs(alpha: float, resolution: int, classes: int = 1000) -> int:
    """MACs by the paper's formulas: stem Df^2*27*C, blocks Df^2*(9*M + M*N), classifier C*1000."""
    width = lambda c: int(c * alpha)  # noqa: E731
    size = (resolution + 1) // 2  # the stride-2 stem, TF "same"
    total = size * size * 3 * 3 * 3 * width(32)
    for stride, m, n in PAPER_BLOCKS:
        size = (size + 1) // 2 if stride == 2 else size
        total += size * size * (9 * width(m) + width(m) * width(n))
    return total + width(1024) * classes


def test_mobilenet_v1_224_totals_equal_the_published_exact_numbers() -> None:
    base = network_cost(v1_layers(1.0, 224, include_top=False))
    assert base["total_macs"] == 567_716_352  # TF-slim mobilenet_v1.py docstring
    assert base["conv_weights"] == 3_185_088  # same
    full = network_cost(v1_layers(1.0, 224))
    assert full["total_macs"] == 568_740_352
    assert full["total_params"] == 4_253_864  # Keras count_params()
    assert full["trainable_params"] == 4_231_976


@pytest.mark.parametrize(("alpha", "resolution"), PAIRS)
def test_macs_equal_the_paper_formula(alpha, resolution) -> None:
    assert network_cost(v1_layers(alpha, resolution))["total_macs"] == \
        paper_macs(alpha, resolution)


@pytest.mark.parametrize(("alpha", "resolution"), PAIRS)
def test_params_equal_keras_count_params(tf, alpha, resolution) -> None:
    import keras

    model = keras_mobilenet(alpha, resolution)
    cost = network_cost(v1_layers(alpha, resolution))
    assert cost["total_params"] == model.count_params()
    trainable = sum(int(keras.ops.size(w)) for w in model.trainable_weights)
    assert cost["trainable_params"] == trainable


def test_every_block_ratio_is_the_closed_form() -> None:
    for block in separable_blocks(V1.blocks(alpha=1.0, resolution=224)):
        exact = Fraction(block.separable_macs, block.standard_macs)
        assert exact == Fraction(1, block.out_channels) + Fraction(1, block.kernel**2)
        assert 7.8 < 1 / exact < 9.0


def test_conv_mobilenet_of_the_paper_table_4() -> None:
    conv = conv_mobilenet_cost(V1.blocks())
    assert round(conv["total_macs"] / 1e6, 2) == 4867.29  # paper: 4866M
    assert round(conv["weights"] / 1e6, 2) == 29.28  # paper: 29.3M


def test_share_by_layer_type_against_the_paper_table_2() -> None:
    shares = share_by_type(V1.layers())
    macs = {k: round(100 * v["macs"], 2) for k, v in shares.items()}
    assert macs["Conv 1x1"] == 94.86 and macs["Conv DW 3x3"] == 3.06
    assert macs["Fully connected"] == 0.18
    assert macs["Conv 3x3 (stem)"] == 1.91  # the paper prints 1.19: digits swapped (sums to 99.29)
    params = {k: round(100 * v["params"], 2) for k, v in shares.items()}
    assert params["Conv DW 3x3"] == 1.06 and params["Conv 3x3 (stem)"] == 0.02


def test_summary_json_schema_and_totals(capsys) -> None:
    assert main(["summary", "--alpha", "0.5", "--resolution", "160", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"alpha", "resolution", "layers", "total_params", "trainable_params",
                           "total_macs"}
    assert report["total_macs"] == paper_macs(0.5, 160)
    assert sum(layer["macs"] for layer in report["layers"]) == report["total_macs"]
    assert sum(layer["params"] for layer in report["layers"]) == report["total_params"]
    assert report["layers"][0] == {"name": "conv1", "kind": "conv2d",
                                   "output_shape": [80, 80, 16], "params": 432,
                                   "macs": 80 * 80 * 27 * 16}
    assert main(["summary"]) == 0
    assert "total MACs 568,740,352" in capsys.readouterr().out


def test_compare_json_totals_and_plot(tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib")
    plot = tmp_path / "compare.png"
    assert main(["compare", "--json", "--measure", "--plot", str(plot), "--resolution", "128",
                 "--alpha", "0.25"]) == 0
    report = json.loads(capsys.readouterr().out)
    blocks = separable_blocks(V1.blocks(alpha=0.25, resolution=128))
    pairs = report["blocks_only"]
    assert pairs["standard_macs"] == sum(b.standard_macs for b in blocks)
    assert pairs["separable_macs"] == sum(b.separable_macs for b in blocks)
    assert pairs["standard_params"] == sum(9 * b.in_channels * b.out_channels for b in blocks)
    assert pairs["separable_params"] == sum(9 * b.in_channels + b.in_channels * b.out_channels
                                            for b in blocks)
    assert all(row["standard_seconds"] > 0 for row in report["blocks"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
