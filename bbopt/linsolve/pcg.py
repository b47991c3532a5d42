"""Conjugate gradients with an optional SSOR preconditioner (Axelsson's SSOR-PCG).

With A = D + L + Lᵀ the SSOR preconditioner is
``P_ω = (D + ωL) D⁻¹ (D + ωL)ᵀ / (ω(2 − ω))``, ω ∈ (0, 2). Applying ``P_ω⁻¹ r`` is one
forward and one backward SOR sweep on ``A z = r`` from ``z = 0`` (the textbook identity), so
it reuses :class:`~bbopt.linsolve.sor.SORSweep` (pyamg's compiled sweep, or two sparse
triangular solves). Cost = CG iterations; the tolerance is on ``‖b − Ax‖/‖b‖`` (as MATLAB's
``pcg``), so a warm start ``x0`` that is already good enough costs 0 iterations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bbopt.linsolve.result import Monitor, SolveResult, check_controls
from bbopt.linsolve.sor import SORSweep, _vector, as_csr


class SSORPreconditioner:
    """``z = P_ω⁻¹ r`` for ``r: (n,)``; symmetric positive definite when A is and 0 < ω < 2."""

    def __init__(self, A: Any, omega: float, kernel: str = "auto"):
        self.sweep = SORSweep(A, omega, kernel)

    def __call__(self, r: np.ndarray) -> np.ndarray:
        z = np.zeros_like(r)
        self.sweep.forward(z, r)
        self.sweep.backward(z, r)
        return z


def pcg(A: Any, b: np.ndarray, omega: float | None = None, x0: np.ndarray | None = None, *,
        tol: float = 1e-8, maxiter: int = 10_000, div_tol: float = 1e8, kernel: str = "auto") -> SolveResult:
    """Solve SPD ``A x = b`` by CG, SSOR-preconditioned with ``omega`` (``None``: plain CG).

    A breakdown (``pᵀAp ≤ 0``: A is not positive definite) or a non-finite / blown-up
    residual ends the solve as diverged, with cost ``maxiter``.
    """
    check_controls(tol, maxiter, div_tol)
    A = as_csr(A)
    precond = None if omega is None else SSORPreconditioner(A, omega, kernel)
    b = _vector(b, A.shape[0], "b")
    x = np.zeros_like(b) if x0 is None else _vector(x0, b.size, "x0").copy()
    mon = Monitor(b, tol, div_tol)
    r = b - A @ x
    status = mon.status(r)
    k = 0
    if status != "running":
        return mon.result(x, k, status, maxiter)
    z = r if precond is None else precond(r)
    p = z.copy()
    rz = float(r @ z)
    while k < maxiter:
        Ap = A @ p
        pAp = float(p @ Ap)
        if not pAp > 0:
            return mon.result(x, k, "diverged", maxiter)
        alpha = rz / pAp
        x += alpha * p
        r -= alpha * Ap
        k += 1
        status = mon.status(r)
        if status != "running":
            break
        z = r if precond is None else precond(r)
        rz_new = float(r @ z)
        p *= rz_new / rz
        p += z
        rz = rz_new
    return mon.result(x, k, status, maxiter)
