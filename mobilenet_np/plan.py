"""The fused path as a plan: the layer table compiled into fused steps, and run.

``compile_plan`` turns every unit of every block (the layers of one role, see ``layers.py``)
into one step of ``fused.py``: a conv unit ([zero_pad] conv, BN, [activation]) into one
``Conv`` or ``Depthwise`` with BN folded into its weights, squeeze-excite's six layers into one
``SqueezeExcite``, a residual add into ``Residual``, pooling and the classifier into a ``Head``.
The rule is the role: a role without a step here is an error when the model is built, never a
quiet fallback. ``run_plan`` runs the steps through the one interpreter; ``run_in_lanes``
splits a batch over lanes, one thread per core (see its docstring for why threads pay off only
there).
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import numpy as np
from threadpoolctl import ThreadpoolController

from .fused import ACTIVATIONS, Step, fold_batch_norm
from .interpreter import run_steps
from .layers import BN_WEIGHTS, CONV_ROLES, Block, Layer, Params
from .shapes import resolve_padding

# Where each backend's step classes live: the same steps, calling other kernels.
BACKENDS = {"numpy": "mobilenet_np.fused", "numba": "mobilenet_np.compiled"}


def compile_plan(blocks: list[Block], params: Params, backend: str = "numpy") -> list[Step]:
    """One fused step per unit; each step records the layers it replaces in ``step.covers``."""
    steps = backend_steps(backend)
    plan = []
    for block in blocks:
        for role, layers in block.units():
            if role not in UNIT_STEPS:
                raise ValueError(f"the fused path has no step for role {role!r} ({layers[0].name}"
                                 f" in block {block.name}): add one to plan.UNIT_STEPS")
            step = UNIT_STEPS[role](layers, params, steps)
            step.covers = layers
            plan.append(step)
    return plan


def backend_steps(backend: str) -> ModuleType:
    """The module whose step classes (``Conv``, ``Depthwise``, ...) a backend runs."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    steps = importlib.import_module(BACKENDS[backend])
    if backend == "numba":
        steps.kernels()  # Numba missing: one clear error now, not at the first predict
    return steps


def run_plan(plan: list[Step], x: np.ndarray) -> np.ndarray:
    """Run fused steps in order: (N, H, W, 3) -> logits (N, classes) or features."""
    return run_steps(plan, x, call_step)


def call_step(step: Step, x: np.ndarray, earlier: np.ndarray | None) -> np.ndarray:
    """One fused step; ``earlier`` is the saved output a ``Residual`` adds back."""
    return step(x) if step.source is None else step(x, earlier)


def run_in_lanes(plan: list[Step], x: np.ndarray, batch_size: int, lanes: int) -> np.ndarray:
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


def _kinds(layers: tuple[Layer, ...]) -> list[str]:
    return [layer.kind for layer in layers]


def _conv_unit(layers: tuple[Layer, ...], params: Params, steps: ModuleType) -> Step:
    """[zero_pad] conv, BN, [activation] -> one ``Conv`` or ``Depthwise``, BN folded in."""
    pads, rest = (layers[0].padding, layers[1:]) if layers[0].kind == "zero_pad" else (None, layers)
    conv, bn, *after = rest
    activation = after[0].kind if after else None  # None: a linear bottleneck
    if bn.kind != "batch_norm" or len(after) > 1 or (after and activation not in ACTIVATIONS):
        raise ValueError(f"the fused path runs a conv unit as [zero_pad] conv, batch_norm, "
                         f"[{' | '.join(ACTIVATIONS)}], not {_kinds(layers)}")
    depthwise = conv.kind == "depthwise_conv2d"
    weight = params[f"{conv.name}/{'depthwise_kernel' if depthwise else 'kernel'}"]
    kernel, bias = fold_batch_norm(weight, *(params[f"{bn.name}/{w}"] for w in BN_WEIGHTS),
                                   depthwise=depthwise)
    if depthwise:
        return steps.Depthwise(conv, _merge_pads(pads, conv), kernel, bias, activation)
    if pads is not None:
        raise ValueError(f"the fused path pads only before a depthwise conv, not {conv.name}")
    return steps.Conv(conv, kernel, bias, activation)


def _matrix(layer: Layer, params: Params) -> tuple[np.ndarray, np.ndarray]:
    """A 1x1 conv or dense layer's kernel as a (Cin, Cout) matrix, and its bias."""
    kernel = params[f"{layer.name}/kernel"]
    return kernel.reshape(-1, kernel.shape[-1]), params[f"{layer.name}/bias"]


def _squeeze_excite(layers: tuple[Layer, ...], params: Params, steps: ModuleType) -> Step:
    """pool, conv, relu, conv, hard_sigmoid, multiply -> one step."""
    expected = ["global_average_pool", "pointwise_conv2d", "relu", "pointwise_conv2d",
                "hard_sigmoid", "multiply"]
    if _kinds(layers) != expected:
        raise ValueError(f"the fused path knows squeeze-excite as {expected}, got {_kinds(layers)}")
    return steps.SqueezeExcite(_matrix(layers[1], params), _matrix(layers[3], params))


def _head(layers: tuple[Layer, ...], params: Params, steps: ModuleType) -> Step:
    """Pooling, then every matmul stage with the activation that follows it (softmax is left to
    ``predict``, flatten is free on the pooled vector)."""
    pool, *rest = layers
    if pool.kind not in ("global_average_pool", "global_max_pool"):
        raise ValueError(f"the fused path's head starts with global pooling, not {pool.kind}")
    stages = []
    for i, layer in enumerate(rest):
        follower = rest[i + 1].kind if i + 1 < len(rest) else None
        if layer.kind in ("classifier", "dense", "pointwise_conv2d"):
            stages.append((*_matrix(layer, params), follower if follower in ACTIVATIONS else None))
        elif layer.kind not in (*ACTIVATIONS, "flatten", "softmax"):
            raise ValueError(f"the fused path's head has no stage for {layer.kind} ({layer.name})")
    return steps.Head("avg" if pool.kind == "global_average_pool" else "max", stages)


def _merge_pads(before, layer: Layer):
    """An explicit zero_pad followed by a conv's own padding is one padding."""
    own = resolve_padding(layer.padding, layer.input_shape[:2], (layer.kernel, layer.kernel),
                          (layer.stride, layer.stride), layer.name)
    if before is None:
        return own
    return tuple((a + c, b + d) for (a, b), (c, d) in zip(before, own, strict=True))


# The rule of the fused path: which step runs each unit role, built from a backend's steps.
UNIT_STEPS: dict[str, Callable[[tuple[Layer, ...], Params, ModuleType], Step]] = {
    **{role: _conv_unit for role in CONV_ROLES},
    "squeeze_excite": _squeeze_excite,
    "residual": lambda layers, params, steps: steps.Residual(layers[0].source),
    "rescaling": lambda layers, params, steps: steps.Rescale(),
    "top": _head,
}
