"""The one interpreter: run steps in order, keeping the outputs that later steps read again.

A step is a layer of the table (the readable path, ``model.py``) or a fused step (the fused
path, ``lanes.py``). Every step has a ``name``, the layer whose output it produces, and a
``source``: None, or the name of an earlier output it combines with its input (a residual
``add``, squeeze-and-excite's ``multiply``). Only this loop keeps those saved outputs; the
readable path, the fused path, the profiler and batch-norm calibration all run through it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np


class Step(Protocol):
    name: str
    source: str | None


# call(step, x, other) -> the step's output; ``other`` is the saved output of step.source
Call = Callable[[Step, np.ndarray, "np.ndarray | None"], np.ndarray]


def run_steps(steps: Sequence[Step], x: np.ndarray, call: Call,
              capture: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Run ``steps`` on x in order with ``call``; with ``capture``, store every step's output."""
    readers = Counter(step.source for step in steps if step.source)
    saved: dict[str, np.ndarray] = {}
    for step in steps:
        other = None
        if step.source:
            other = saved[step.source]
            readers[step.source] -= 1
            if not readers[step.source]:  # its last reader: let the memory go
                del saved[step.source]
        x = call(step, x, other)
        if readers[step.name]:
            saved[step.name] = x
        if capture is not None:
            capture[step.name] = x
    return x
