"""Preconditioned CG with an interchangeable preconditioner, for choosing the preconditioner
per system (the PCGBandit setting: Khodak, Jung, Wynne, Chow, Kolemen, arXiv 2509.08765).

Textbook PCG (Hestenes–Stiefel with z = M⁻¹r): α = rᵀz / pᵀAp, x += αp, r −= αAp,
β = r⁺ᵀz⁺ / rᵀz, p = z⁺ + βp; it stops on the updated residual ‖r‖/‖b‖ < tol (equal to
‖b − Ax‖/‖b‖ in exact arithmetic). Preconditioners (:func:`preconditioner`), each with its
cost per application in fine-grid matrix–vector products (``apply_matvecs``):

- ``none``: M = I (plain CG), 0;
- ``jacobi``: M = D, n/nnz(A);
- ``ssor``: SSOR(ω), one forward and one backward SOR sweep (:class:`SSORPreconditioner`), 2;
- ``amg``: one V-cycle of pyamg's smoothed-aggregation AMG, its cycle complexity (the
  cycle's work over one fine matvec); its setup (strength, aggregation, Galerkin products)
  is work the iteration count does not show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bbopt.linsolve.pcg import SSORPreconditioner, cg_iterations
from bbopt.linsolve.result import Monitor, SolveResult, check_controls
from bbopt.linsolve.sor import _vector, as_csr

PRECONDITIONERS = ("none", "jacobi", "ssor", "amg")


@dataclass
class Preconditioner:
    """``apply(r) -> z ≈ A⁻¹ r``; ``apply_matvecs``: its cost in fine-grid matrix–vector products."""

    name: str
    apply: Callable[[np.ndarray], np.ndarray]
    apply_matvecs: float


def preconditioner(A: Any, name: str, omega: float = 1.5) -> Preconditioner:
    """Build preconditioner ``name`` (one of :data:`PRECONDITIONERS`) for SPD ``A``; ``omega``: SSOR's ω."""
    A = as_csr(A)
    if name == "none":
        return Preconditioner(name, lambda r: r, 0.0)
    if name == "jacobi":
        inv = 1.0 / A.diagonal()
        return Preconditioner(name, lambda r: inv * r, A.shape[0] / A.nnz)
    if name == "ssor":
        return Preconditioner(name, SSORPreconditioner(A, omega), 2.0)
    if name == "amg":
        import pyamg

        ml = pyamg.smoothed_aggregation_solver(A)
        return Preconditioner(name, ml.aspreconditioner(cycle="V").matvec, float(ml.cycle_complexity()))
    raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {name!r}")


def preconditioned_cg(A: Any, b: np.ndarray, M: Preconditioner, *, tol: float = 1e-8, maxiter: int = 10_000,
                      div_tol: float = 1e8) -> SolveResult:
    """Solve SPD ``A x = b`` from x = 0 by CG preconditioned with ``M``; cost = iterations (``maxiter``
    when not converged; a breakdown pᵀAp ≤ 0 or a blown-up residual is 'diverged')."""
    check_controls(tol, maxiter, div_tol)
    A = as_csr(A)
    b = _vector(b, A.shape[0], "b")
    x, r = np.zeros_like(b), b.copy()
    mon = Monitor(b, tol, div_tol)
    status = mon.status(r)
    if status != "running":
        return mon.result(x, 0, status, maxiter)
    return cg_iterations(A, x, r, mon, maxiter, M.apply)
