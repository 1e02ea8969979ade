"""Time MobileNetV4 in NumPy (fused predict) beside timm (PyTorch, eval, no_grad) on this CPU.

Run in the side environment of ``scripts/make_v4_fixtures.py`` (it needs torch and timm):

    /work/venv-v4/bin/python scripts/v4_speed.py

Both run in the same process, one after the other, on the same seeded weights and input;
each time is the median of ``REPEATS`` runs after one warm-up. A comparison, not a benchmark:
other processes on the machine move both.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import timm
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout, and the tests' helpers
from helpers.v4_weights import RESOLUTION, TIMM_NAMES, seeded_model, seeded_params  # noqa: E402

from mobilenet_np.torch_layout import to_torch  # noqa: E402

REPEATS = 5


def median_seconds(run, *args, **kwargs) -> float:
    """The median wall time of run(*args, **kwargs) over REPEATS calls, after a warm-up."""
    run(*args, **kwargs)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(variants: list[str]) -> None:
    print(f"threads: torch {torch.get_num_threads()}, CPUs {os.cpu_count()}; "
          f"timm {timm.__version__}, torch {torch.__version__}")
    print("| variant | batch | NumPy predict (ms) | timm (ms) | NumPy / timm |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for variant in variants:
        ours = seeded_model(variant)
        gold = timm.create_model(TIMM_NAMES[variant], pretrained=False).eval()
        state = {k: torch.from_numpy(a.copy())
                 for k, a in to_torch(seeded_params(variant), ours.layers).items()}
        gold.load_state_dict(state, strict=False)
        for batch in (1, 32):
            x = np.random.default_rng(0).uniform(-1, 1, (batch, RESOLUTION, RESOLUTION, 3))
            x = x.astype(np.float32)
            nchw = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
            ours_s = median_seconds(ours.predict, x, batch_size=batch, output="logits")
            with torch.no_grad():
                timm_s = median_seconds(gold, nchw)
            print(f"| {ours.family.title} | {batch} | {ours_s * 1e3:,.1f} | {timm_s * 1e3:,.1f} | "
                  f"{ours_s / timm_s:.1f}x |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["conv-small", "hybrid-medium"])
