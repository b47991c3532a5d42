"""Young's optimal SOR relaxation factor, a cheap estimate of it, and the SOR rate it implies.

For a consistently ordered matrix (the 5-point Laplacian in lexicographic or red–black
order; any 2-cyclic matrix in red–black order) with Jacobi spectral radius β = ρ(I − D⁻¹A)
< 1, the SOR iteration matrix has spectral radius (Young, 1971)

    ρ(ω) = ¼ (ωβ + √(ω²β² − 4(ω − 1)))²   for ω ≤ ω*,      ρ(ω) = ω − 1   for ω ≥ ω*,

minimised at ``ω* = 1 + (β / (1 + √(1 − β²)))²`` (equivalently β² = 4(ω* − 1)/ω*²).
:func:`jacobi_spectral_radius` computes β exactly (an eigenvalue solve: the "extra matrix
work" learners avoid, kept as an oracle baseline). :func:`estimate_jacobi_radius` runs a few
Lanczos steps on D^{-1/2} A D^{-1/2} from the smooth start D^{1/2}·1 (close to the lowest
mode of diffusion-type matrices), one matrix–vector product per step: for 2-cyclic matrices
β = 1 − λ_min(D^{-1/2} A D^{-1/2}), and the smallest Ritz value bounds λ_min from above, so
β̂ ≤ β and ω̂ ≤ ω* (6 steps: within ~0.03 of ω* on the S1, S2 and diffusion streams).
:func:`sor_rate` is the prior the contextual learners use (``prior="young"``); it is exact
(asymptotically) for consistently ordered matrices and only a guess otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg import eigh_tridiagonal
from scipy.sparse.linalg import eigsh

from bbopt.linsolve.sor import as_csr

DENSE_LIMIT = 1500  # up to this size a dense symmetric eigensolve is fastest


def _scaled(A: Any) -> sp.csr_matrix:
    A = as_csr(A)
    s = 1.0 / np.sqrt(A.diagonal())
    return sp.csr_matrix(sp.diags(s) @ A @ sp.diags(s))


def jacobi_spectral_radius(A: Any) -> float:
    """β = ρ(I − D⁻¹A) for symmetric A with a positive diagonal (via ``D^{-1/2} A D^{-1/2}``)."""
    S = _scaled(A)
    if S.shape[0] <= DENSE_LIMIT:
        lam = np.linalg.eigvalsh(S.toarray())
        lo, hi = float(lam[0]), float(lam[-1])
    else:
        lam = eigsh(S, k=2, which="BE", return_eigenvectors=False, tol=1e-10)
        lo, hi = float(lam.min()), float(lam.max())
    return max(abs(1.0 - lo), abs(1.0 - hi))


def estimate_jacobi_radius(A: Any, steps: int = 6) -> float:
    """β̂ = 1 − (smallest Ritz value of ``steps`` Lanczos steps on D^{-1/2} A D^{-1/2} from D^{1/2}·1),
    clipped to [0, 1): ``steps`` matrix–vector products with A. A lower bound on β for 2-cyclic
    symmetric A (where the Jacobi spectrum is symmetric about 0)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    A = as_csr(A)
    S = _scaled(A)
    q = np.sqrt(A.diagonal())
    q /= np.linalg.norm(q)
    q_prev, off = np.zeros_like(q), 0.0
    alphas, betas = [], []
    for _ in range(min(int(steps), S.shape[0])):
        v = S @ q - off * q_prev
        alphas.append(float(q @ v))
        v -= alphas[-1] * q
        off = float(np.linalg.norm(v))
        if off <= 1e-14:  # an invariant subspace: the Ritz values are eigenvalues
            break
        betas.append(off)
        q_prev, q = q, v / off
    lam = eigh_tridiagonal(np.array(alphas), np.array(betas[:len(alphas) - 1]), eigvals_only=True)
    return float(min(max(1.0 - lam[0], 0.0), np.nextafter(1.0, 0.0)))


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


def beta_of_omega(omega_star: float) -> float:
    """The Jacobi radius β whose Young ω* is ``omega_star`` ∈ [1, 2): β = 2√(ω* − 1)/ω*."""
    return 2.0 * math.sqrt(max(float(omega_star) - 1.0, 0.0)) / float(omega_star)


def sor_rate(omegas: Any, beta: float) -> np.ndarray:
    """Young's SOR spectral radius ρ(ω) ``(d,)`` for relaxation factors ``omegas`` ∈ (0, 2) at Jacobi radius β."""
    w = np.asarray(omegas, dtype=float)
    disc = np.maximum(w**2 * beta**2 - 4.0 * (w - 1.0), 0.0)
    below = 0.25 * (w * beta + np.sqrt(disc)) ** 2
    return np.where(disc > 0, below, np.abs(w - 1.0))
