"""Running fused steps: one chunk of images through every step, and a batch split over lanes.

Each lane (a thread) runs whole chunks of images through every step, with BLAS held to one
thread per lane. Why whole chunks: NumPy lets go of the GIL inside each call, so two lanes
keep two cores busy with the elementwise work (depthwise, bias, activation) that BLAS's own
threads never share. But every call also takes the GIL back, so threads that meet after every
layer spend their time waiting for each other (measured: splitting each layer over two
threads was slower than one). Chunks of different images never meet.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
from threadpoolctl import ThreadpoolController

from .interpreter import run_steps


class Step(Protocol):
    name: str
    source: str | None

    def __call__(self, x: np.ndarray, *earlier: np.ndarray) -> np.ndarray: ...


def run_plan(steps: list[Step], x: np.ndarray) -> np.ndarray:
    """Run fused steps in order: (N, H, W, 3) -> logits (N, classes) or features."""
    return run_steps(steps, x, call_step)


def call_step(step: Step, x: np.ndarray, earlier: np.ndarray | None) -> np.ndarray:
    """One fused step; ``earlier`` is the saved output a step with a ``source`` joins."""
    return step(x) if step.source is None else step(x, earlier)


def run_in_lanes(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch_size: int,
                 lanes: int) -> np.ndarray:
    """Run ``run`` on x (N, ...) ``batch_size`` images at a time, on ``lanes`` threads.

    With one image, or ``lanes=1``, BLAS keeps all its threads and no lane is started. (The
    BLAS limit is process-wide while the lanes run, and restored when they finish.)
    """
    lanes = max(1, min(lanes, len(x)))
    size = max(1, min(batch_size, -(-len(x) // lanes)))  # ceil: every lane gets a chunk
    chunks = [x[i:i + size] for i in range(0, len(x), size)]  # each (n, ...)
    if lanes == 1:
        return np.concatenate([run(chunk) for chunk in chunks])
    with _blas_controller().limit(limits=1, user_api="blas"), ThreadPoolExecutor(lanes) as pool:
        return np.concatenate(list(pool.map(run, chunks)))


def cpu_cores() -> int:
    """The CPU cores this process may run on (fewer than the machine's in a container)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """Finds the loaded BLAS libraries once (a scan of the process's shared libraries)."""
    return ThreadpoolController()
