"""The backends, by name: which step classes run the units of a plan (``plan.Unit``).

``numpy`` runs ``fused.py``'s steps, ``numba`` the steps of ``compiled.py`` (the loop twins of
``reference.py``, compiled; Numba itself is imported only when a numba step first runs, or
when ``check_backend`` asks for it). This is the one place a backend is chosen by its name.
"""

from __future__ import annotations

from . import compiled, fused
from .errors import InputError
from .plan import Unit

BACKENDS = {"numpy": fused.STEPS, "numba": compiled.STEPS}


def check_backend(backend: str) -> None:
    """An unknown backend, or Numba missing: one clear error now, not at the first predict."""
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got "
                         f"{backend!r}")
    if backend == "numba":
        compiled.kernels()


def build_steps(plan: list[Unit], backend: str = "numpy") -> list[fused.Step]:
    """One step of ``backend`` per unit, ready to run."""
    check_backend(backend)
    return [BACKENDS[backend][unit.op](unit) for unit in plan]
