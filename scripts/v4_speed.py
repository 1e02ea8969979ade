"""Time MobileNetV4 in NumPy (fused predict, and the numba backend) beside timm on this CPU.

Run in a side environment with torch, timm and numba (not test dependencies):

    python -m venv ~/venv-torch
    ~/venv-torch/bin/pip install torch timm safetensors numpy pillow numba
    ~/venv-torch/bin/pip install -e .
    ~/venv-torch/bin/python scripts/v4_speed.py [--rounds 15] [conv-small hybrid-medium]

The three runners share one process, the same seeded weights (``tests/helpers/v4_weights.py``)
and the same input; their outputs are compared once first (max |logit difference| printed).
Each runner gets one warm-up call (numba compiles there), then the calls are *interleaved*:
round after round, every runner once per batch size, so that a change of load on the machine
moves all three alike. Each time printed is the median over the rounds, per call and per
image. A number measured while other jobs run is not a result: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import timm
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout, and the tests' helpers
from helpers.v4_weights import RESOLUTION, TIMM_NAMES, as_stored, seeded_model  # noqa: E402

import mobilenet_np as mnp  # noqa: E402
from mobilenet_np.torch_layout import to_torch  # noqa: E402

BATCHES = (1, 32)


def runners(variant: str) -> dict:
    """name -> a function of one NHWC float32 batch giving (N, 1000) logits."""
    ours = seeded_model(variant)
    jit = mnp.Network(ours.family, as_stored(ours.params), backend="numba",
                      resolution=RESOLUTION, include_preprocessing=False)
    gold = timm.create_model(TIMM_NAMES[variant], pretrained=False).eval()
    state = {k: torch.from_numpy(a.copy()) for k, a in to_torch(ours.params, ours.layers).items()}
    gold.load_state_dict(state, strict=False)

    def run_timm(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return gold(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()

    return {"NumPy fused": lambda x: ours.predict(x, batch_size=len(x), output="logits"),
            "numba": lambda x: jit.predict(x, batch_size=len(x), output="logits"),
            "timm": run_timm}


def seconds(run, x: np.ndarray) -> float:
    start = time.perf_counter()
    run(x)
    return time.perf_counter() - start


def measure(variant: str, rounds: int) -> list[dict]:
    """Median seconds per call of every runner at every batch size, interleaved rounds."""
    run = runners(variant)
    inputs = {b: np.random.default_rng(b).uniform(-1, 1, (b, RESOLUTION, RESOLUTION, 3))
              .astype(np.float32) for b in BATCHES}
    outputs = {name: f(inputs[1]) for name, f in run.items()}  # the warm-up (numba compiles)
    gap = max(float(np.abs(out - outputs["timm"]).max()) for out in outputs.values())
    print(f"{variant}: max |logit - timm's| {gap:.2e} (batch 1)", flush=True)
    for f in run.values():
        f(inputs[BATCHES[-1]])  # a warm-up at the large batch too
    times = {(name, b): [] for name in run for b in BATCHES}
    for _ in range(rounds):
        for b in BATCHES:
            for name, f in run.items():
                times[name, b].append(seconds(f, inputs[b]))
    return [{"variant": variant, "batch": b, **{name: float(np.median(times[name, b]))
                                                for name in run}} for b in BATCHES]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", default=["conv-small", "hybrid-medium"])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"CPUs {os.cpu_count()}, torch threads {torch.get_num_threads()}, load average "
          f"{load:.1f} at the start; timm {timm.__version__}, torch {torch.__version__}, "
          f"numpy {np.__version__}; median of {args.rounds} interleaved rounds")
    rows = [row for variant in args.variants for row in measure(variant, args.rounds)]
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print("| variant | batch | NumPy fused ms (per image) | numba ms (per image) | "
          "timm ms (per image) | NumPy / timm | numba / timm |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        cells = " | ".join(f"{r[k] * 1e3:,.1f} ({r[k] * 1e3 / r['batch']:,.1f})"
                           for k in ("NumPy fused", "numba", "timm"))
        print(f"| {r['variant']} | {r['batch']} | {cells} | {r['NumPy fused'] / r['timm']:.1f}x "
              f"| {r['numba'] / r['timm']:.1f}x |")


if __name__ == "__main__":
    main()
