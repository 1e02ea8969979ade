"""Wall-clock measurements: medians of repeated runs (the machine is noisy, medians are not)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import numpy as np

from . import ops
from .cost import SeparableVsStandard, layer_macs, network_cost, separable_blocks
from .layers import Layer
from .model import MODELS
from .plan import run_step
from .published import FAMILY


def median_seconds(run: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``run()`` over ``repeats`` calls, after ``warmup`` unmeasured calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_standard_vs_separable(layers: list[Layer], repeats: int = 3, seed: int = 0) -> list[dict]:
    """Time, per separable block, the NumPy standard 3x3 conv against depthwise + pointwise.

    Each block runs on random data of its real shapes at batch 1. Returns one dict per block:
    name, seconds for each kind, the time ratio, and achieved GFLOP/s (2 FLOPs per MAC).
    """
    rng = np.random.default_rng(seed)
    by_name = {layer.name: layer for layer in layers}
    return [_time_block(by_name[block.name], block, rng, repeats)
            for block in separable_blocks(layers)]


def _time_block(depthwise: Layer, block: SeparableVsStandard, rng: np.random.Generator,
                repeats: int) -> dict:
    """Time one block both ways on random data of its shapes, batch 1."""
    k, m, n = block.kernel, block.in_channels, block.out_channels
    x = rng.standard_normal((1, *depthwise.input_shape)).astype(np.float32)
    standard_kernel = rng.standard_normal((k, k, m, n)).astype(np.float32)
    depthwise_kernel = rng.standard_normal((k, k, m, 1)).astype(np.float32)
    pointwise_kernel = rng.standard_normal((m, n)).astype(np.float32)
    stride, padding = depthwise.stride, depthwise.padding

    def standard():
        return ops.conv2d(x, standard_kernel, stride=stride, padding=padding)

    def separable():
        spatial = ops.depthwise_conv2d(x, depthwise_kernel, stride=stride, padding=padding)
        return ops.pointwise_conv2d(spatial, pointwise_kernel)

    t_standard = median_seconds(standard, repeats)
    t_separable = median_seconds(separable, repeats)
    return {
        "name": block.name, "standard_seconds": t_standard, "separable_seconds": t_separable,
        "time_ratio": t_standard / t_separable, "mac_ratio": 1 / block.mac_ratio,
        "standard_gflops": 2 * block.standard_macs / t_standard / 1e9,
        "separable_gflops": 2 * block.separable_macs / t_separable / 1e9,
    }


def profile_layers(model, batch: int = 1, repeats: int = 5, fast: bool = False,
                   seed: int = 0) -> list[dict]:
    """Median time of every layer (readable path) or fused step (fast path) on random input.

    Returns rows {name, kind, seconds, macs, gflops}. A fused step carries the MACs of every
    layer it replaces (e.g. a conv with its BN folded in, or squeeze-excite's two 1x1 convs).
    """
    x = model.random_input(batch, seed)
    saved: dict[str, np.ndarray] = {}  # every output so far, for residuals and SE gates
    if fast and model.fast_plan() is not None:
        steps = [(step, step.covers, step.kind) for step in model.fast_plan()]
        run = functools.partial(run_step, saved=saved)
    else:
        steps = [(layer, (layer,), layer.kind) for layer in model.layers]
        run = functools.partial(model.run_layer, saved=saved)
    rows = []
    for step, covers, kind in steps:
        seconds = median_seconds(functools.partial(run, step, x), repeats)
        macs = batch * sum(layer_macs(layer) for layer in covers)
        main = covers[1] if covers[0].kind == "zero_pad" and len(covers) > 1 else covers[0]
        rows.append({"name": main.name, "kind": kind, "seconds": seconds, "macs": macs,
                     "gflops": 2 * macs / seconds / 1e9})
        x = saved[covers[-1].name] = run(step, x)
    return rows


def family_rows(repeats: int = 5, seed: int = 0) -> list[dict]:
    """Every published model of ``published.FAMILY`` at 224: exact MACs and params beside the
    published ones, and the measured NumPy ``predict`` latency at batch 1 (random weights)."""

    rows = []
    for name, (arch, options, top1, macs, params, source) in FAMILY.items():
        model = MODELS[arch](weights=None, seed=seed, **options)
        x = model.random_input(1, seed)
        cost = network_cost(model.layers)
        rows.append({"name": name, "arch": arch, "options": options,
                     "macs": cost["total_macs"], "params": cost["total_params"],
                     "published_macs_m": macs, "published_params_m": params,
                     "published_top1": top1, "source": source,
                     "fast_path": model.fast_plan() is not None,
                     "latency_ms": 1e3 * median_seconds(lambda m=model, x=x: m.predict(x),
                                                        repeats)})
    return rows
