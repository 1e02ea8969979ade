"""Print the README's cost tables (Markdown): our exact counts beside the published ones.

    python scripts/cost_tables.py

Published numbers, quoted: the MobileNet paper (Howard et al. 2017, arXiv:1704.04861) Tables
2, 4, 6 and 7, and TF-slim's ``mobilenet_v1.md`` table (million MACs, million parameters, for
its 1001-class checkpoints). Ours: ``mobilenet_np.cost`` on the Keras architecture
(1000 classes); params include BN's moving statistics, as Keras ``count_params()`` does.
"""

from __future__ import annotations

from mobilenet_np.cost import conv_mobilenet_cost, network_cost, share_by_type
from mobilenet_np.families.v1 import PAPER, PAPER_TABLE_2, PAPER_TABLE_4, SLIM, V1

ALPHAS, RESOLUTIONS = (1.0, 0.75, 0.5, 0.25), (224, 192, 160, 128)


def grid() -> str:
    rows = ["| alpha | resolution | MACs (ours) | params (ours, = Keras) | trainable | "
            "paper MACs / params | TF-slim MACs / params (1001 classes) |",
            "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    for alpha in ALPHAS:
        for resolution in RESOLUTIONS:
            cost = network_cost(V1.layers(alpha=alpha, resolution=resolution))
            slim_cost = network_cost(V1.layers(alpha=alpha, resolution=resolution, classes=1001))
            paper = PAPER.get((alpha, resolution))
            slim = SLIM[(alpha, resolution)]
            flag = " **(off)**" if abs(slim[1] - slim_cost["total_macs"] / 1e6) > 1.5 else ""
            rows.append(
                f"| {alpha} | {resolution} | {cost['total_macs']:,} ({cost['total_macs'] / 1e6:.1f}M)"
                f" | {cost['total_params']:,} | {cost['trainable_params']:,} | "
                f"{f'{paper[1]}M / {paper[2]}M' if paper else '-'} | "
                f"{slim[1]}M / {slim[2]}M{flag} |")
    return "\n".join(rows)


def table_2() -> str:
    rows = ["| layer type | MACs (ours) | MACs (paper) | params (ours) | params (paper) |",
            "| --- | ---: | ---: | ---: | ---: |"]
    for kind, shares in share_by_type(V1.layers()).items():
        paper = PAPER_TABLE_2[kind]
        rows.append(f"| {kind} | {100 * shares['macs']:.2f}% | {paper[0]}% | "
                    f"{100 * shares['params']:.2f}% | {paper[1]}% |")
    return "\n".join(rows)


def table_4() -> str:
    layers = V1.layers()
    conv = conv_mobilenet_cost(layers)
    ours = network_cost(layers)
    weights = sum(c.weights for c in ours["layers"])
    return "\n".join([
        "| model | MACs (ours) | MACs (paper) | weights (ours) | params (paper) |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| Conv MobileNet (3x3 convs everywhere) | {conv['total_macs'] / 1e6:,.2f}M | "
        f"{PAPER_TABLE_4['Conv MobileNet'][1]}M | {conv['weights'] / 1e6:.2f}M | "
        f"{PAPER_TABLE_4['Conv MobileNet'][2]}M |",
        f"| MobileNet | {ours['total_macs'] / 1e6:,.2f}M | {PAPER_TABLE_4['MobileNet'][1]}M | "
        f"{weights / 1e6:.2f}M | {PAPER_TABLE_4['MobileNet'][2]}M |",
    ])


if __name__ == "__main__":
    print("### Every alpha x resolution\n\n" + grid())
    print("\n### Share by layer type, 1.0/224 (paper Table 2)\n\n" + table_2())
    print("\n### Standard vs depthwise-separable network (paper Table 4)\n\n" + table_4())
