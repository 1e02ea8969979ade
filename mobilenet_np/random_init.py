"""Seeded random weights that neither vanish nor explode, for teaching, timing and tests."""

from __future__ import annotations

import numpy as np

from .interpreter import run_steps
from .kinds import run_layer
from .layers import Layer, Params


def random_weights(layers: list[Layer], seed: int = 0) -> Params:
    """He-normal kernels, random batch-norm gamma/beta and placeholder moving statistics.

    Kernels have std sqrt(2 / fan_in); moving variances are in [0.5, 2] until
    ``calibrate_batch_norm`` measures them. Keras's own init is not enough: its BN is an
    identity and MobileNet's logits come out ~1e-18.
    """
    rng = np.random.default_rng(seed)
    params = {}
    for layer in layers:
        for weight, shape in layer.weights.items():
            # by suffix: an attention layer holds several ("query_kernel", "key_down_gamma")
            if weight.endswith("kernel"):
                # depthwise (kh, kw, C, M): kh*kw inputs per output; others: all but the last axis
                depthwise = weight.endswith("depthwise_kernel")
                fan_in = int(np.prod(shape[:2] if depthwise else shape[:-1]))
                value = rng.normal(0, np.sqrt(2 / fan_in), shape)
            elif weight.endswith("gamma") or weight == "scale":  # scale: V4's layer scale
                value = rng.uniform(0.5, 1.5, shape)
            elif weight.endswith("moving_variance"):
                value = rng.uniform(0.5, 2.0, shape)
            else:  # beta, moving_mean, bias
                value = rng.normal(0, 0.5, shape)
            params[f"{layer.name}/{weight}"] = value.astype(np.float32)
    return params


def calibrate_batch_norm(layers: list[Layer], params: Params, x: np.ndarray) -> Params:
    """New params whose batch-norm variances are measured on ``x``, a seeded random batch.

    He-normal kernels alone let activations shrink or blow up through dozens of layers (V3's
    unbounded ReLU and hard-swish: logits in the thousands). Setting each BN's variance to that
    of its actual input keeps every BN output of size ~gamma, in every family: a data-dependent
    initialisation. The mean is not centred on the data: that would subtract nearly equal
    numbers in near-constant channels, magnify round-off and make float32 comparisons
    meaningless.
    """
    params = dict(params)

    def measure_then_run(layer: Layer, x: np.ndarray, other: np.ndarray | None) -> np.ndarray:
        if layer.kind == "batch_norm":
            mean = params[f"{layer.name}/moving_mean"]
            params[f"{layer.name}/moving_variance"] = ((x - mean) ** 2).mean(
                axis=tuple(range(x.ndim - 1)))  # over all but the channels
        weights = {name: params[f"{layer.name}/{name}"] for name in layer.weights}
        return run_layer(layer, x, weights, other)

    run_steps(layers, x, measure_then_run)
    return params
