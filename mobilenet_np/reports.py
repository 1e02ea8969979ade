"""Tables and JSON for ``mobilenet-np summary`` and ``compare``, built from ``cost.py``."""

from __future__ import annotations

from pathlib import Path

from .cost import conv_mobilenet_cost, network_cost, separable_blocks
from .errors import MissingDependencyError
from .files import atomic_output
from .layers import Block, Layer


def summary_json(layers: list[Layer], alpha: float, resolution: int) -> dict:
    """``{"alpha", "resolution", "layers": [...], "total_params", "trainable_params",
    "total_macs"}``, every count an int."""
    cost = network_cost(layers)
    return {
        "alpha": alpha, "resolution": resolution,
        "layers": [{"name": c.name, "kind": c.kind, "output_shape": list(c.output_shape),
                    "params": c.params, "macs": c.macs} for c in cost["layers"]],
        "total_params": cost["total_params"], "trainable_params": cost["trainable_params"],
        "total_macs": cost["total_macs"],
    }


def summary_table(layers: list[Layer]) -> str:
    """A torchinfo-style table: name, kind, output shape, params, MACs, % of total MACs."""
    cost = network_cost(layers)
    total = cost["total_macs"]
    lines = [f"{'layer':<26}{'kind':<20}{'output':>16}{'params':>12}{'MACs':>15}{'%MACs':>8}"]
    lines.append("-" * len(lines[0]))
    for c in cost["layers"]:
        shape = "x".join(map(str, c.output_shape))
        lines.append(f"{c.name:<26}{c.kind:<20}{shape:>16}{c.params:>12,}{c.macs:>15,}"
                     f"{100 * c.macs / total:>7.2f}%")
    lines.append("-" * len(lines[0]))
    lines.append(f"total params {cost['total_params']:,} (trainable {cost['trainable_params']:,},"
                 f" BN statistics {cost['total_params'] - cost['trainable_params']:,})")
    lines.append(f"total MACs {total:,} = {total / 1e6:.2f}M (FLOPs = 2 x MACs = "
                 f"{2 * total / 1e9:.3f}G); BN/activation/pool elementwise outputs "
                 f"{cost['elementwise']:,}, not in MACs")
    return "\n".join(lines)


def compare_json(blocks: list[Block], measured: list[dict] | None = None) -> dict:
    """Standard vs depthwise-separable per block, and in total two ways: ``blocks_only`` (the
    depthwise + projection pairs alone) and ``whole_network`` (every layer, stem and classifier
    included, with each pair replaced by its standard conv or not). Times if ``measured``."""
    pairs = separable_blocks(blocks)
    times = {m["name"]: m for m in measured or []}  # by depthwise layer name, not by position
    rows = []
    for b in pairs:
        row = {"block": b.block, "name": b.name, "kernel": b.kernel,
               "in_channels": b.in_channels, "out_channels": b.out_channels,
               "depth_multiplier": b.depth_multiplier, "size": list(b.size),
               "standard_macs": b.standard_macs, "separable_macs": b.separable_macs,
               "standard_params": b.standard_params, "separable_params": b.separable_params,
               "mac_ratio": b.standard_macs / b.separable_macs,
               "closed_form": 1 / b.closed_form}
        if times:
            row.update({k: v for k, v in times[b.name].items() if k != "name"})
        rows.append(row)
    blocks_only = {key: sum(r[key] for r in rows) for key in
                   ("standard_macs", "separable_macs", "standard_params", "separable_params")}
    cost = network_cost([layer for block in blocks for layer in block.layers])
    standard = conv_mobilenet_cost(blocks)
    whole_network = {"standard_macs": standard["total_macs"], "separable_macs": cost["total_macs"],
                     "standard_weights": standard["weights"],
                     "separable_weights": sum(c.weights for c in cost["layers"])}
    return {"blocks": rows, "blocks_only": blocks_only, "whole_network": whole_network}


def compare_table(report: dict) -> str:
    """Per block: Df, M, N, both costs, the ratio and 1/(1/N + 1/Dk^2); times when measured."""
    if not report["blocks"]:
        return "no block of this network has a depthwise conv and a 1x1 projection to compare"
    measured = "time_ratio" in report["blocks"][0]
    header = (f"{'block':<12}{'Df':>9}{'M':>6}{'N':>6}{'standard MACs':>16}{'separable MACs':>16}"
              f"{'ratio':>7}{'formula':>8}")
    if measured:
        header += f"{'t std ms':>10}{'t sep ms':>10}{'t ratio':>8}{'GFLOP/s std/sep':>17}"
    lines = [header, "-" * len(header)]
    for r in report["blocks"]:
        line = (f"{r['block']:<12}{'x'.join(map(str, r['size'])):>9}{r['in_channels']:>6}"
                f"{r['out_channels']:>6}{r['standard_macs']:>16,}{r['separable_macs']:>16,}"
                f"{r['mac_ratio']:>7.2f}{r['closed_form']:>8.2f}")
        if measured:
            line += (f"{1e3 * r['standard_seconds']:>10.2f}{1e3 * r['separable_seconds']:>10.2f}"
                     f"{r['time_ratio']:>8.2f}{r['standard_gflops']:>9.1f}/"
                     f"{r['separable_gflops']:<7.1f}")
        lines.append(line)
    lines.append("-" * len(header))
    pairs, whole = report["blocks_only"], report["whole_network"]
    ratio = pairs["standard_macs"] / pairs["separable_macs"]
    lines.append(f"blocks only: standard {pairs['standard_macs']:,} MACs, separable "
                 f"{pairs['separable_macs']:,} MACs ({ratio:.2f}x fewer); params "
                 f"{pairs['standard_params']:,} vs {pairs['separable_params']:,}")
    lines.append(f"whole network (stem, every other layer and the classifier included): "
                 f"{whole['standard_macs']:,} vs {whole['separable_macs']:,} MACs "
                 f"({whole['standard_macs'] / whole['separable_macs']:.2f}x fewer); weights "
                 f"{whole['standard_weights']:,} vs {whole['separable_weights']:,}")
    if measured:
        t_std = sum(r["standard_seconds"] for r in report["blocks"])
        t_sep = sum(r["separable_seconds"] for r in report["blocks"])
        lines.append(f"measured (NumPy, batch 1, medians): standard {1e3 * t_std:.1f} ms, "
                     f"separable {1e3 * t_sep:.1f} ms ({t_std / t_sep:.2f}x faster, vs "
                     f"{ratio:.2f}x fewer MACs)")
    return "\n".join(lines)


def compare_plot(report: dict, path: Path) -> None:
    """Bars of MACs per block (both kinds, log scale) and measured vs MAC ratio if measured."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("--plot needs matplotlib: pip install matplotlib") from None
    blocks = report["blocks"]
    names = [b["block"].replace("block_", "") for b in blocks]
    positions = range(len(blocks))
    measured = "time_ratio" in blocks[0]
    figure, axes = plt.subplots(1, 2 if measured else 1, figsize=(12 if measured else 7, 4),
                                squeeze=False)
    left = axes[0, 0]
    left.bar([p - 0.2 for p in positions], [b["standard_macs"] for b in blocks], 0.4,
             label="standard 3x3 conv")
    left.bar([p + 0.2 for p in positions], [b["separable_macs"] for b in blocks], 0.4,
             label="depthwise + pointwise")
    left.set(yscale="log", xlabel="block", ylabel="MACs (log scale)",
             title="MACs per MobileNet block", xticks=list(positions), xticklabels=names)
    left.legend()
    if measured:
        right = axes[0, 1]
        right.plot(names, [b["mac_ratio"] for b in blocks], "o-", label="MAC ratio")
        right.plot(names, [b["time_ratio"] for b in blocks], "s-", label="measured time ratio")
        right.set(xlabel="block", ylabel="standard / separable",
                  title="Fewer MACs is not the same as less time")
        right.legend()
    figure.tight_layout()
    with atomic_output(path) as temporary:  # the temporary name has no extension: say the format
        figure.savefig(temporary, dpi=110, format=path.suffix.lstrip(".").lower())
    plt.close(figure)


def profile_table(rows: list[dict], batch: int) -> str:
    """Per layer: time, MACs, GFLOP/s; then time share vs MAC share by layer kind."""
    total_time = sum(r["seconds"] for r in rows)
    total_macs = sum(r["macs"] for r in rows) or 1
    lines = [f"{'layer':<26}{'kind':<20}{'ms':>9}{'MACs':>16}{'GFLOP/s':>9}{'%time':>7}",
             "-" * 87]
    for r in rows:
        lines.append(f"{r['name']:<26}{r['kind']:<20}{1e3 * r['seconds']:>9.3f}{r['macs']:>16,}"
                     f"{r['gflops']:>9.1f}{100 * r['seconds'] / total_time:>6.1f}%")
    lines += ["-" * 87, f"total {1e3 * total_time:.1f} ms for batch {batch} "
              f"({1e3 * total_time / batch:.1f} ms per image); medians of repeated runs", "",
              f"{'kind':<20}{'% of time':>10}{'% of MACs':>10}"]
    kinds: dict[str, list[float]] = {}
    for r in rows:
        share = kinds.setdefault(r["kind"], [0.0, 0.0])
        share[0] += r["seconds"] / total_time
        share[1] += r["macs"] / total_macs
    for kind, (time_share, mac_share) in sorted(kinds.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"{kind:<20}{100 * time_share:>9.1f}%{100 * mac_share:>9.1f}%")
    return "\n".join(lines)


def family_table(rows: list[dict]) -> str:
    """The MobileNet family side by side: exact counts, published ones, measured latency."""
    lines = [f"{'model (224x224)':<32}{'MACs':>9}{'published':>10}{'params':>8}{'published':>10}"
             f"{'top-1 %':>8}{'NumPy ms':>10}", "-" * 87]
    for r in rows:
        lines.append(f"{r['name']:<32}{r['macs'] / 1e6:>8.1f}M{r['published_macs_m']:>9}M"
                     f"{r['params'] / 1e6:>7.2f}M{r['published_params_m']:>9}M"
                     f"{r['published_top1']:>8.1f}{r['latency_ms']:>9.1f}")
    lines += ["-" * 87, "MACs and params: exact, from the layer tables (params as Keras "
              "count_params()). Published MACs/params/top-1: TF-slim's tables (1001 classes).",
              "The papers, as reported: V2 1.0 72.0% / 3.4M / 300M (arXiv:1801.04381v4, Table 4); "
              "V3-Small 1.0 56M MAdds / 2.5M params, V3-Large 1.0 219M (217M in Table 9) "
              "(arXiv:1905.02244v5, Table 3); slim's V3-Small rows follow an earlier version.",
              "NumPy ms: predict (fused path), batch 1, median, this machine."]
    return "\n".join(lines)
