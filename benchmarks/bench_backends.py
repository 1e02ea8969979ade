"""The numba backend's steps against the numpy fused path's, kind by kind, on the same inputs.

    pip install -e ".[jit]"
    python benchmarks/bench_backends.py [--arch v1] [--alpha 1.0] [--batch 1] [--threads 1]

Both backends' steps are built from the one plan (its units are plain data); the numpy steps
run once through the interpreter, and at every step the numpy step and its numba twin are timed on
the step's real input, alternately (medians of ``--repeats``). Sums per kind of step say
which kernels the numba backend speeds up, and by how much. BLAS is held to ``--threads``
threads (default 1: the kernels themselves, less disturbed by a busy machine). Not a test.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import mobilenet_np as mnp
from mobilenet_np.backends import build_steps
from mobilenet_np.interpreter import run_steps
from mobilenet_np.lanes import call_step


def step_kind(step) -> str:
    """The step's kind, saying what a conv step runs."""
    unit = step.unit
    if unit.op == "conv":
        return "1x1 (matmul, epilogue)" if unit.kernel.shape[:2] == (1, 1) else \
            "stem (im2col, matmul, epilogue)"
    return unit.op


def compare(arch: str, alpha: float, batch: int, repeats: int) -> dict[str, list[float]]:
    """{kind: [numpy seconds, numba seconds]}, summed over the steps of that kind."""
    family = mnp.get_family(arch)
    numpy_model = mnp.Network(family, weights=None, alpha=alpha)
    twins = dict(zip(map(id, numpy_model.fused_steps), build_steps(numpy_model.plan, "numba"),
                     strict=True))
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])

    def timed(step, x: np.ndarray, earlier: np.ndarray | None) -> np.ndarray:
        times = ([], [])
        for _ in range(repeats + 1):  # the first round warms up
            for side, candidate in enumerate((step, twins[id(step)])):
                start = time.perf_counter()
                call_step(candidate, x, earlier)
                times[side].append(time.perf_counter() - start)
        for side in (0, 1):
            totals[step_kind(step)][side] += float(np.median(times[side][1:]))
        return call_step(step, x, earlier)

    run_steps(numpy_model.fused_steps, numpy_model.random_input(batch), timed)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=list(mnp.FAMILIES), default="v1")
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    with threadpool_limits(args.threads, user_api="blas"):
        totals = compare(args.arch, args.alpha, args.batch, args.repeats)
    blas = [(info["internal_api"], info.get("architecture")) for info in threadpool_info()]
    print(f"{args.arch} {args.alpha}/224, batch {args.batch}, BLAS {blas} on {args.threads} "
          f"thread(s); medians of {args.repeats}, summed per kind")
    print(f"  {'kind':<36}{'numpy ms':>10}{'numba ms':>10}{'speed-up':>10}")
    for kind, (numpy_s, numba_s) in sorted(totals.items(), key=lambda item: -item[1][0]):
        print(f"  {kind:<36}{1e3 * numpy_s:>10.2f}{1e3 * numba_s:>10.2f}{numpy_s / numba_s:>9.2f}x")
    numpy_s, numba_s = (sum(t[side] for t in totals.values()) for side in (0, 1))
    print(f"  {'total':<36}{1e3 * numpy_s:>10.2f}{1e3 * numba_s:>10.2f}{numpy_s / numba_s:>9.2f}x")


if __name__ == "__main__":
    main()
