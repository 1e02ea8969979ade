"""Say when BLAS holds the machine back: the BLAS library and kernels beside the CPU's vectors.

The 1x1 convolutions are ~95% of MobileNet's MACs and run as BLAS matmuls, so the BLAS
kernels set the pace. OpenBLAS picks its kernels once, when NumPy loads it, and may pick
narrower ones than the CPU has (Haswell's 256-bit kernels on an AVX-512 CPU: it does on this
project's AMD EPYC). ``blas_report`` finds that out and measures a matmul both ways, each in
a fresh process, since ``OPENBLAS_CORETYPE`` only counts before NumPy loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info

# OpenBLAS's kernel families (its ``architecture``) by the vector width they use, in bits.
CORETYPE_BITS = {"SkylakeX": 512, "Cooperlake": 512, "SapphireRapids": 512, "Haswell": 256,
                 "Zen": 256, "Sandybridge": 256, "Excavator": 256, "Steamroller": 256,
                 "Piledriver": 256, "Bulldozer": 256}
# The widest OpenBLAS kernels a CPU can run, by the /proc/cpuinfo flags they need.
WIDEST_CORETYPES = (("SkylakeX", {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}),
                    ("Haswell", {"avx2", "fma"}), ("Sandybridge", {"avx"}))
VECTOR_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx2", "fma",
                "avx", "sse4_2", "asimd", "sve")
# The 28x28, 256 -> 256 channel 1x1 conv of MobileNet V1 1.0/224 (conv_pw_5), 4 images.
MATMUL_SHAPE = (3136, 256, 256)
# One BLAS thread: the kernels' speed per core, which another busy process on a shared
# machine disturbs less than a matmul that needs every core at once.
CHILD = ("import json; from threadpoolctl import threadpool_limits; "
         "from mobilenet_np.machine import matmul_gflops, openblas; threadpool_limits(1); "
         "print(json.dumps({'architecture': (openblas() or {}).get('architecture'), "
         "'gflops': matmul_gflops()}))")


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux), or an empty set elsewhere."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith(("flags", "Features")):  # x86, ARM
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def widest_coretype(flags: set[str]) -> str | None:
    """The OpenBLAS kernel family with the widest vectors these CPU flags allow, or None."""
    return next((name for name, needs in WIDEST_CORETYPES if needs <= flags), None)


def openblas() -> dict | None:
    """threadpoolctl's record of the loaded OpenBLAS (version, num_threads, architecture)."""
    return next((info for info in threadpool_info() if info.get("internal_api") == "openblas"),
                None)


def matmul_gflops(repeats: int = 20) -> float:
    """Median float32 GFLOP/s of one pointwise-conv-sized matmul (``MATMUL_SHAPE``), this process."""
    rows, inner, cols = MATMUL_SHAPE
    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, inner)).astype(np.float32)
    b = rng.standard_normal((inner, cols)).astype(np.float32)
    a @ b  # warm-up: threads started, pages touched
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * rows * inner * cols / float(np.median(times)) / 1e9


def measure_in_child(coretype: str | None) -> dict:
    """{architecture, gflops} from a fresh Python, run with ``OPENBLAS_CORETYPE=coretype``, or
    with this process's environment for None; {"error": ...} when that process fails (e.g.
    kernels the CPU cannot run)."""
    env = dict(os.environ, **({"OPENBLAS_CORETYPE": coretype} if coretype else {}))
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                          text=True, timeout=300)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_both_ways(coretype: str, rounds: int = 2) -> dict:
    """Matmul GFLOP/s with the kernels in use and with ``coretype``'s, in alternating fresh
    processes; the best round of each (a shared machine only ever slows a round down)."""
    results: dict[str, list[dict]] = {"in use": [], coretype: []}
    for _ in range(rounds):
        for setting in results:
            results[setting].append(measure_in_child(None if setting == "in use" else setting))
    return {setting: max(runs, key=lambda r: r.get("gflops", -1.0))
            for setting, runs in results.items()}


def blas_report(measure: bool = True) -> dict:
    """The BLAS in use, the CPU's vector extensions, and whether OpenBLAS runs narrower kernels
    than the CPU supports; if so (and ``measure``), matmul GFLOP/s both ways."""
    flags, blas = cpu_flags(), openblas()
    report = {"blas": [{k: info.get(k) for k in ("internal_api", "version", "num_threads",
                                                 "architecture", "filepath")}
                       for info in threadpool_info() if info.get("user_api") == "blas"],
              "cpu_vector_flags": [f for f in VECTOR_FLAGS if f in flags],
              "widest_coretype": widest_coretype(flags), "narrower": False,
              "coretype_env": os.environ.get("OPENBLAS_CORETYPE")}
    if blas is None or report["widest_coretype"] is None:
        return report
    in_use = CORETYPE_BITS.get(blas.get("architecture") or "", 0)
    report["narrower"] = in_use < CORETYPE_BITS[report["widest_coretype"]]
    if measure and report["narrower"]:
        report["measured"] = measure_both_ways(report["widest_coretype"])
    return report


def format_blas_report(report: dict) -> str:
    """``blas_report`` as lines of text, with the advice when wider kernels are faster."""
    lines = [f"BLAS: {b['internal_api']} {b['version']}, {b['num_threads']} threads, "
             f"{b['architecture'] or 'unknown'} kernels" for b in report["blas"]] or ["BLAS: none found"]
    lines.append(f"CPU vector extensions: {' '.join(report['cpu_vector_flags']) or 'unknown'}")
    widest = report["widest_coretype"]
    if report["narrower"]:
        forced = (f" because OPENBLAS_CORETYPE={report['coretype_env']} is set"
                  if report["coretype_env"] else "")
        lines.append(f"OpenBLAS runs narrower kernels than this CPU supports{forced} "
                     f"(it could run {widest}'s).")
    measured = report.get("measured", {})
    if report["narrower"] and not measured:
        lines.append("  (`mobilenet-np doctor` measures a matmul with both and says how to switch)")
    for setting, result in measured.items():
        label = "kernels in use" if setting == "in use" else f"OPENBLAS_CORETYPE={setting}"
        value = (f"{result['gflops']:6.1f} GFLOP/s ({result['architecture']} kernels)"
                 if "gflops" in result else f"failed: {result['error']}")
        lines.append(f"  {label:<28} {value}")
    if measured:
        rows, inner, cols = MATMUL_SHAPE
        lines.append(f"  (float32 ({rows}, {inner}) @ ({inner}, {cols}): one thread, median of 20 "
                     f"in a fresh process, best of 2 such processes each)")
        speeds = [result.get("gflops") for result in measured.values()]
        if None in speeds:
            lines.append("Could not measure both ways: see the error above.")
        elif speeds[1] > 1.1 * speeds[0]:
            lines.append(f"Faster here: start Python with OPENBLAS_CORETYPE={widest} in the "
                         f"environment (read once, when NumPy loads OpenBLAS), e.g.\n"
                         f"  OPENBLAS_CORETYPE={widest} mobilenet-np classify photo.jpg")
        else:
            lines.append("Not faster here: keep the kernels in use.")
    return "\n".join(lines)
