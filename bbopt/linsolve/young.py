"""Young's optimal SOR relaxation factor — an oracle baseline, not a method.

For a consistently ordered matrix (the 5-point Laplacian in lexicographic or red–black
order) with Jacobi spectral radius β = ρ(I − D⁻¹A) < 1, the SOR spectral radius is
minimised at ``ω* = 1 + (β / (1 + √(1 − β²)))²`` where it equals ω* − 1 (Young, 1971).
β needs an eigenvalue computation per matrix: the "extra matrix work" learners avoid.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

from bbopt.linsolve.sor import as_csr

DENSE_LIMIT = 1500  # up to this size a dense symmetric eigensolve is fastest


def jacobi_spectral_radius(A: Any) -> float:
    """β = ρ(I − D⁻¹A) for symmetric A with a positive diagonal (via ``D^{-1/2} A D^{-1/2}``)."""
    A = as_csr(A)
    s = 1.0 / np.sqrt(A.diagonal())
    S = sp.diags(s) @ A @ sp.diags(s)
    if S.shape[0] <= DENSE_LIMIT:
        lam = np.linalg.eigvalsh(S.toarray())
        lo, hi = float(lam[0]), float(lam[-1])
    else:
        lam = eigsh(S, k=2, which="BE", return_eigenvectors=False, tol=1e-10)
        lo, hi = float(lam.min()), float(lam.max())
    return max(abs(1.0 - lo), abs(1.0 - hi))


def young_omega(A: Any = None, *, beta: float | None = None) -> float:
    """ω* from a matrix ``A`` or directly from its Jacobi spectral radius ``beta``."""
    if (A is None) == (beta is None):
        raise ValueError("young_omega: give exactly one of A or beta")
    if beta is None:
        beta = jacobi_spectral_radius(A)
    beta = float(beta)
    if not (0.0 <= beta < 1.0):
        raise ValueError(f"young_omega: needs a Jacobi spectral radius in [0, 1), got {beta:.6g} "
                         "(Jacobi does not converge, so Young's formula does not apply)")
    return 1.0 + (beta / (1.0 + math.sqrt(1.0 - beta * beta))) ** 2
