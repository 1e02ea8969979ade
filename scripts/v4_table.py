"""Print docs/v4.md's table of MobileNetV4 variants (Markdown), every number measured here.

    python scripts/v4_table.py

Params: ``cost.network_cost`` on the layer table (trainable = timm's ``sum(p.numel())``, which
``tests/fixtures/v4/*.npz`` recorded from timm itself); MACs at 224x224, split into
convolutions and classifier vs attention's two matmuls (q k^T and p v); the largest
|log-probability| difference from timm on the committed fixtures (the seeded weights and
input of ``tests/helpers/v4_weights.py``), beside the float32 bound the tests allow.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout, and the tests' helpers
from helpers.v4_weights import VARIANTS, seeded_input, seeded_model  # noqa: E402
from test_mobilenet_v4 import log_softmax, roundoff_bounds  # noqa: E402

from mobilenet_np.cost import network_cost  # noqa: E402
from mobilenet_np.v4_kinds import kv_positions, mqa_widths  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "v4"


def attention_matmul_macs(layers) -> int:
    """heads * L * S * (d + dv) per attention layer: the scores and the weighted sum."""
    total = 0
    for layer in (layer for layer in layers if layer.kind == "mobile_mqa"):
        heads, d, dv = mqa_widths(layer)
        total += heads * layer.input_shape[0] * layer.input_shape[1] * kv_positions(layer) * (d + dv)
    return total


def row(variant: str) -> str:
    model, x = seeded_model(variant), seeded_input()
    cost = network_cost(model.family.layers())
    attention = attention_matmul_macs(model.layers)
    gold = np.load(FIXTURES / f"{variant}.npz")
    error = np.abs(log_softmax(model.forward(x, output="logits")) - log_softmax(gold["logits"]))
    bound = roundoff_bounds(model, x, None)["logits"]
    return (f"| {model.family.title} | {cost['trainable_params']:,} | "
            f"{int(gold['timm_params']):,} | {cost['total_params']:,} | "
            f"{(cost['total_macs'] - attention) / 1e6:,.1f} | {attention / 1e6:,.1f} | "
            f"{cost['total_macs'] / 1e6:,.1f} | {error.max():.2g} | {bound:.2g} |")


if __name__ == "__main__":
    print("| variant | params (ours, trainable) | timm sum(p.numel()) | with BN statistics | "
          "MACs conv + classifier (M) | MACs attention matmuls (M) | MACs total (M) | "
          "max abs diff vs timm (log-prob) | float32 bound |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in sys.argv[1:] or VARIANTS:
        print(row(name), flush=True)
