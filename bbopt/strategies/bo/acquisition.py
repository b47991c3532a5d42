"""Additive lower confidence bound and its optimisation (RDUCB's acquisition).

For minimisation the acquisition is ``Σ_g μ_g(x_g) − β σ_g(x_g)`` over the cliques of the
decomposition (Kandasamy et al. 2015; Ziomek & Bou-Ammar 2023), with the component
posteriors of :class:`AdditiveGP` and ``β_t = 0.5·log(2t)``. Being a sum over the cliques
of a junction tree it is minimised exactly on a grid by min-sum message passing; the
discrete winner is then polished by L-BFGS-B on the continuous sum (analytic gradient).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_solve
from scipy.optimize import minimize

from bbopt.strategies.bo.additive_gp import AdditiveGP


def beta_schedule(t: int, scale: float = 0.5) -> float:
    """β_t = scale · log(2t) for t ≥ 1 (RDUCB's schedule: scale 0.5)."""
    return scale * float(np.log(2.0 * max(1, t)))


def clique_lcb(gp: AdditiveGP, clique: tuple[int, ...], Z: np.ndarray, beta: float) -> np.ndarray:
    """μ_g − β σ_g at clique coordinates ``Z: (m, |g|)`` → ``(m,)``."""
    mean, var = gp.component(clique, Z)
    return mean - beta * np.sqrt(var)


def clique_potentials(gp: AdditiveGP, beta: float):
    """The LCB as one min-sum table per clique for :func:`zoom_minimize`: clique g's table
    holds μ_g − β σ_g on the grid of its variables' candidate states, shape ``(c_i, c_j, …)``."""
    cliques = gp.cliques

    def potentials(states: list[np.ndarray]) -> list[np.ndarray]:
        tables = []
        for clique in cliques:
            grids = np.meshgrid(*[states[i] for i in clique], indexing="ij")
            Z = np.column_stack([g.ravel() for g in grids])
            tables.append(clique_lcb(gp, clique, Z, beta).reshape(grids[0].shape))
        return tables

    return potentials


def lcb_and_grad(gp: AdditiveGP, x: np.ndarray, beta: float) -> tuple[float, np.ndarray]:
    """Σ_g μ_g(x) − β σ_g(x) at one point ``x: (d,)`` and its gradient ``(d,)``.

    ∂k_g/∂x_i = −k_g (x_i − X_i)/ℓ_i², ∂μ_g = ∂k_g·α, ∂σ_g² = −2 ∂k_g·K⁻¹k_g.
    """
    x = np.asarray(x, dtype=float)
    cliques = gp.cliques
    kvecs = np.stack([gp.cross(c, x[list(c)][None, :])[0] for c in cliques])  # (C, n)
    U = cho_solve((gp.L, True), kvecs.T)  # (n, C) = K⁻¹ k_g
    value, grad = 0.0, np.zeros_like(x)
    inv_ls2 = np.exp(-2.0 * gp.hyper.log_ls)
    for c, (clique, k) in enumerate(zip(cliques, kvecs)):
        idx = list(clique)
        var = max(gp.hyper.clique_variance(clique) - float(k @ U[:, c]), 1e-12)
        sd = np.sqrt(var)
        dk = -k[None, :] * (x[idx, None] - gp.X[:, idx].T) * inv_ls2[idx, None]  # (|g|, n)
        value += float(k @ gp.alpha) - beta * sd
        grad[idx] += dk @ gp.alpha - beta * (-2.0 * dk @ U[:, c]) / (2.0 * sd)
    return value, grad


def polish(gp: AdditiveGP, x0: np.ndarray, beta: float, max_iter: int = 30) -> tuple[np.ndarray, float]:
    """L-BFGS-B on the LCB inside [0, 1]^d from ``x0``; returns the better of start and end."""
    start = float(lcb_and_grad(gp, x0, beta)[0])
    if max_iter <= 0:
        return np.asarray(x0, dtype=float), start
    res = minimize(lambda z: lcb_and_grad(gp, z, beta), np.asarray(x0, dtype=float), jac=True,
                   method="L-BFGS-B", bounds=[(0.0, 1.0)] * len(x0), options={"maxiter": max_iter})
    x = np.clip(res.x, 0.0, 1.0)
    value = float(lcb_and_grad(gp, x, beta)[0])
    return (x, value) if value < start else (np.asarray(x0, dtype=float), start)
