"""Wall-clock measurements: medians of repeated runs (the machine is noisy, medians are not)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from . import ops
from .cost import SeparableVsStandard, layer_macs, network_cost, separable_blocks
from .interpreter import run_steps
from .lanes import call_step
from .layers import Block, Layer
from .model import Network
from .registry import FAMILIES


def run_times(run: Callable[[], object], repeats: int = 5, warmup: int = 1) -> np.ndarray:
    """Seconds of each of ``repeats`` calls of ``run()``, after ``warmup`` unmeasured calls: (repeats,)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return np.array(times)


def median_seconds(run: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``run()`` over ``repeats`` calls, after ``warmup`` unmeasured calls."""
    return float(np.median(run_times(run, repeats, warmup)))


def time_standard_vs_separable(blocks: list[Block], repeats: int = 3, seed: int = 0) -> list[dict]:
    """Time, per block, the NumPy standard conv against its depthwise + 1x1 projection.

    Each block runs on random data of its real shapes at batch 1. Returns one dict per block:
    name, seconds for each kind, the time ratio, and achieved GFLOP/s (2 FLOPs per MAC).
    """
    rng = np.random.default_rng(seed)
    by_name = {layer.name: layer for block in blocks for layer in block.layers}
    return [_time_pair(by_name[pair.name], pair, rng, repeats) for pair in separable_blocks(blocks)]


def _time_pair(depthwise: Layer, pair: SeparableVsStandard, rng: np.random.Generator,
               repeats: int) -> dict:
    """Time one block both ways on random data of its shapes, batch 1."""
    k, m, n, multiplier = pair.kernel, pair.in_channels, pair.out_channels, pair.depth_multiplier
    x = rng.standard_normal((1, *depthwise.input_shape)).astype(np.float32)
    standard_kernel = rng.standard_normal((k, k, m, n)).astype(np.float32)
    depthwise_kernel = rng.standard_normal((k, k, m, multiplier)).astype(np.float32)
    pointwise_kernel = rng.standard_normal((m * multiplier, n)).astype(np.float32)
    stride, padding = depthwise.stride, depthwise.padding

    def standard():
        return ops.conv2d(x, standard_kernel, stride=stride, padding=padding)

    def separable():
        spatial = ops.depthwise_conv2d(x, depthwise_kernel, stride=stride, padding=padding)
        return ops.pointwise_conv2d(spatial, pointwise_kernel)

    t_standard = median_seconds(standard, repeats)
    t_separable = median_seconds(separable, repeats)
    return {
        "name": pair.name, "standard_seconds": t_standard, "separable_seconds": t_separable,
        "time_ratio": t_standard / t_separable,
        "standard_gflops": 2 * pair.standard_macs / t_standard / 1e9,
        "separable_gflops": 2 * pair.separable_macs / t_separable / 1e9,
    }


def profile_layers(model: Network, batch: int = 1, repeats: int = 5, fused: bool = False,
                   seed: int = 0) -> list[dict]:
    """Median time of every layer (readable path) or fused step (fused path) on random input.

    Returns rows {name, kind, seconds, macs, gflops}. A fused step carries the MACs of every
    layer it replaces (e.g. a conv with its BN folded in, or squeeze-excite's two 1x1 convs).
    Both paths run through the one interpreter, with each step timed where it stands.
    """
    rows = []

    def timed(step, x: np.ndarray, earlier: np.ndarray | None) -> np.ndarray:
        call = call_step if fused else model.run_layer
        covers = step.unit.covers if fused else (step,)
        seconds = median_seconds(lambda: call(step, x, earlier), repeats)
        macs = batch * sum(layer_macs(layer) for layer in covers)
        main = covers[1] if covers[0].kind == "zero_pad" and len(covers) > 1 else covers[0]
        kind = main.kind if not fused or step.unit.op in ("conv", "depthwise") else step.unit.op
        rows.append({"name": main.name, "kind": kind, "seconds": seconds, "macs": macs,
                     "gflops": 2 * macs / seconds / 1e9})
        return call(step, x, earlier)

    run_steps(model.fused_steps if fused else model.layers, model.random_input(batch, seed), timed)
    return rows


def family_rows(repeats: int = 5, seed: int = 0) -> list[dict]:
    """Every published model of every registered family, at 224: exact MACs and params beside
    the published ones, and the measured NumPy ``predict`` latency at batch 1 (random weights)."""
    rows = []
    for family in FAMILIES.values():
        for published in family.published:
            model = Network(family, weights=None, seed=seed, **published.options)
            x = model.random_input(1, seed)
            cost = network_cost(model.layers)
            rows.append({"name": published.name, "arch": family.name,
                         "options": published.options,
                         "macs": cost["total_macs"], "params": cost["total_params"],
                         "published_macs_m": published.macs_m,
                         "published_params_m": published.params_m,
                         "published_top1": published.top1, "source": published.source,
                         "latency_ms": 1e3 * median_seconds(lambda m=model, x=x: m.predict(x),
                                                            repeats)})
    return rows
