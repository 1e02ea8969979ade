"""The fast path as a plan: the layer table compiled into fused steps, and run.

``compile_plan`` turns conv + BN + activation into one ``fast.Conv`` or ``fast.Depthwise``
(BN folded into the weights), squeeze-excite's six layers into one step, and pooling plus
the classifier into a ``Head``. ``run_plan`` runs the steps in order; ``run_in_lanes`` splits
a batch over lanes, one thread per core (see its docstring for why threads pay off only there).
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import ThreadpoolController

from . import ops
from .fast import ACTIVATIONS, Conv, Depthwise, activate_inplace, fold_batch_norm
from .layers import BN_WEIGHTS, Layer
from .shapes import resolve_padding
from .weights import Params


class Head:
    """Global pooling, then 1x1 stages on the pooled vector: matmul + bias (+ activation).

    V1: one stage (conv_preds); V2: one (the Dense layer); V3: two (conv_2 with hard-swish,
    then logits); no top: none, the pooled features are the output.
    """

    kind = "head"

    def __init__(self, pool: str, stages: list[tuple[np.ndarray, np.ndarray, str | None]]):
        self.pool, self.stages = pool, stages

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x.mean(axis=(1, 2)) if self.pool == "avg" else x.max(axis=(1, 2))  # (N, C)
        for matrix, bias, activation in self.stages:
            x = activate_inplace(x @ matrix + bias, activation)  # (N, C')
        return x


class SqueezeExcite:
    """MobileNetV3's gate: x * hard_sigmoid(W2 relu(W1 mean(x) + b1) + b2), per channel."""

    kind = "squeeze_excite"

    def __init__(self, squeeze: tuple[np.ndarray, np.ndarray],
                 excite: tuple[np.ndarray, np.ndarray]) -> None:
        self.squeeze, self.excite = squeeze, excite

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ops.squeeze_excite(x, *self.squeeze, *self.excite)


class Rescale:
    """MobileNetV3's built-in preprocessing: pixels [0, 255] -> [-1, 1]."""

    kind = "rescaling"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ops.rescale_pixels(x)


class Residual:
    """MobileNetV2's shortcut: add the saved output of an earlier step (``source``)."""

    kind = "add"

    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, x: np.ndarray, saved: dict[str, np.ndarray]) -> np.ndarray:
        return x + saved[self.source]


def run_step(step, x: np.ndarray, saved: dict[str, np.ndarray]) -> np.ndarray:
    """One step; ``saved`` holds the outputs that residual steps will add back."""
    return step(x, saved) if isinstance(step, Residual) else step(x)


def run_plan(plan: list, x: np.ndarray) -> np.ndarray:
    """Run fused steps in order: (N, H, W, 3) -> logits (N, classes) or features."""
    shortcuts = {step.source for step in plan if isinstance(step, Residual)}
    saved = {}
    for step in plan:
        x = run_step(step, x, saved)
        if step.covers[-1].name in shortcuts:
            saved[step.covers[-1].name] = x
    return x


def run_in_lanes(plan: list, x: np.ndarray, batch_size: int, lanes: int) -> np.ndarray:
    """Run x (N, H, W, 3) through the plan ``batch_size`` images at a time, on ``lanes`` threads.

    Each lane (a thread) runs whole chunks of images through every step, with BLAS held to
    one thread per lane. Why whole chunks: NumPy lets go of the GIL inside each call, so two
    lanes keep two cores busy with the elementwise work (depthwise, bias, activation) that
    BLAS's own threads never share. But every call also takes the GIL back, so threads that
    meet after every layer spend their time waiting for each other (measured here: splitting
    each layer over two threads was slower than one). Chunks of different images never meet.
    With one image, or ``lanes=1``, BLAS keeps all its threads and no lane is started. (The
    BLAS limit is process-wide while the lanes run, and restored when they finish.)
    """
    lanes = max(1, min(lanes, len(x)))
    size = max(1, min(batch_size, -(-len(x) // lanes)))  # ceil: every lane gets a chunk
    chunks = [x[i:i + size] for i in range(0, len(x), size)]  # each (n, H, W, 3)
    if lanes == 1:
        return np.concatenate([run_plan(plan, chunk) for chunk in chunks])
    with _blas_controller().limit(limits=1, user_api="blas"), ThreadPoolExecutor(lanes) as pool:
        return np.concatenate(list(pool.map(functools.partial(run_plan, plan), chunks)))


def cpu_cores() -> int:
    """The CPU cores this process may run on (fewer than the machine's in a container)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """Finds the loaded BLAS libraries once (a scan of the process's shared libraries)."""
    return ThreadpoolController()


def compile_plan(layers: list[Layer], params: Params) -> list:
    """Turn the layer table into fused steps: conv+BN+activation -> one ``Conv`` or
    ``Depthwise``, SE's six layers -> one ``SqueezeExcite``, pooling and the top -> ``Head``.

    Every step records the layers it replaces in ``step.covers`` (its output is the output of
    ``covers[-1]``), so costs and residual shortcuts are read off the table, not re-derived.
    Raises ValueError for tables it cannot fuse (e.g. depth multiplier > 1); the readable
    path runs those.
    """
    plan, i = [], 0
    while i < len(layers):
        start, layer = i, layers[i]
        pads = None
        if layer.kind == "zero_pad":  # merged into the next depthwise's own padding
            pads, i = layer.padding, i + 1
            layer = layers[i]
        if layer.kind == "rescaling":
            step, used = Rescale(), 1
        elif layer.kind == "global_average_pool" and any(
                later.kind == "multiply" for later in layers[i + 1:i + 6]):
            step, used = _squeeze_excite(layers[i:i + 6], params), 6  # pool .. multiply
        elif layer.kind in ("conv2d", "pointwise_conv2d", "depthwise_conv2d"):
            step, used = _fused_conv(layers[i:i + 3], params, pads)
        elif layer.kind == "add":
            step, used = Residual(layer.source), 1
        elif layer.kind in ("global_average_pool", "global_max_pool"):
            step, used = _head(layer, layers[i + 1:], params), len(layers) - i
        else:
            raise ValueError(f"the fast path has no step for {layer.kind} ({layer.name})")
        i += used
        step.covers = tuple(layers[start:i])
        plan.append(step)
    return plan


def _fused_conv(layers: list[Layer], params: Params, pads) -> tuple[object, int]:
    """conv, BN and (if one follows) its activation -> one step, and how many layers it took."""
    layer, bn = layers[0], layers[1]
    if bn.kind != "batch_norm":
        raise ValueError(f"cannot fuse {layer.name}: not followed by batch norm")
    follower = layers[2].kind if len(layers) > 2 else None
    activation = follower if follower in ACTIVATIONS else None  # None: a linear bottleneck
    depthwise = layer.kind == "depthwise_conv2d"
    weight = params[f"{layer.name}/{'depthwise_kernel' if depthwise else 'kernel'}"]
    kernel, bias = fold_batch_norm(weight, *(params[f"{bn.name}/{w}"] for w in BN_WEIGHTS),
                                   depthwise=depthwise)
    if not depthwise:
        if pads is not None:
            raise ValueError(f"the fast path pads only before a depthwise conv, not {layer.name}")
        return Conv(layer, kernel, bias, activation), 3 if activation else 2
    if kernel.shape[3] != 1:
        raise ValueError("the fast path's depthwise handles depth multiplier 1")
    return (Depthwise(layer, _merge_pads(pads, layer), kernel, bias, activation),
            3 if activation else 2)


def _matrix(layer: Layer, params: Params) -> tuple[np.ndarray, np.ndarray]:
    """A 1x1 conv or dense layer's kernel as a (Cin, Cout) matrix, and its bias."""
    kernel = params[f"{layer.name}/kernel"]
    return kernel.reshape(-1, kernel.shape[-1]), params[f"{layer.name}/bias"]


def _head(pool: Layer, rest: list[Layer], params: Params) -> Head:
    """Pooling and the matmul stages after it (each with the activation that follows it)."""
    stages = []
    for i, layer in enumerate(rest):
        if layer.kind in ("classifier", "dense", "pointwise_conv2d"):
            follower = rest[i + 1].kind if i + 1 < len(rest) else None
            stages.append((*_matrix(layer, params),
                           follower if follower in ACTIVATIONS else None))
    return Head("avg" if pool.kind == "global_average_pool" else "max", stages)


def _squeeze_excite(layers: list[Layer], params: Params) -> SqueezeExcite:
    """pool, conv, relu, conv, hard_sigmoid, multiply -> one step."""
    kinds = [layer.kind for layer in layers]
    expected = ["global_average_pool", "pointwise_conv2d", "relu", "pointwise_conv2d",
                "hard_sigmoid", "multiply"]
    if kinds != expected:
        raise ValueError(f"the fast path knows squeeze-excite as {expected}, got {kinds}")
    return SqueezeExcite(_matrix(layers[1], params), _matrix(layers[3], params))


def _merge_pads(before, layer: Layer):
    """An explicit zero_pad followed by a conv's own padding is one padding."""
    own = resolve_padding(layer.padding, layer.input_shape[:2], (layer.kernel, layer.kernel),
                          (layer.stride, layer.stride), layer.name)
    if before is None:
        return own
    return tuple((a + c, b + d) for (a, b), (c, d) in zip(before, own, strict=True))
