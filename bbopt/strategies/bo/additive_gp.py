"""The additive GP posterior f = Σ_g f_g(x_g), with per-component posteriors from one Cholesky.

Following RDUCB (Ziomek & Bou-Ammar, ICML 2023) and Add-GP-UCB (Kandasamy et al., 2015):
with ``K = Σ_g k_g(X, X) + σ_n² I = L Lᵀ`` and ``α = K⁻¹ y`` the posterior of component g is

    μ_g(x) = k_g(x, X) α,      σ_g²(x) = k_g(x, x) − ‖L⁻¹ k_g(X, x)‖²,

and Σ_g μ_g is the posterior mean of f. Targets are standardised by the caller
(:func:`standardize`); inputs are unit-cube coordinates ``X: (n, d)``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_solve, solve_triangular

from bbopt.strategies.bo.decomposition import Decomposition
from bbopt.strategies.bo.kernels import Hyper, clique_cross, gram
from bbopt.strategies.bo.likelihood import cholesky_jitter


def standardize(y: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``(z, mean, std)`` with z = (y − mean)/std; a constant y gets std 1 (z = 0, not NaN)."""
    y = np.asarray(y, dtype=float)
    mean = float(y.mean()) if y.size else 0.0
    std = float(y.std()) if y.size > 1 else 0.0
    if not np.isfinite(std) or std < 1e-12 * max(1.0, abs(mean)):
        std = 1.0
    return (y - mean) / std, mean, std


OUTPUT_TRANSFORMS = ("standardize", "power")


def transform_targets(y: np.ndarray, kind: str = "standardize") -> np.ndarray:
    """GP targets from losses ``y: (n,)``: standardised, or (``"power"``) first power-warped
    as HEBO does (Cowen-Rivers et al., JAIR 2022): y/sd(y) through Box–Cox when every loss is
    positive, else Yeo–Johnson, λ by maximum likelihood. Both are increasing in y; Box–Cox
    with λ ≈ 0 is a log, so a few huge losses (a Rosenbrock wall) no longer flatten the
    differences near the optimum."""
    y = np.asarray(y, dtype=float)
    if kind == "power" and len(y) > 2 and np.ptp(y) > 0:
        from scipy.stats import boxcox, yeojohnson

        s = y / y.std()
        with np.errstate(all="ignore"):
            warped = boxcox(s)[0] if s.min() > 0 else yeojohnson(s)[0]
        if np.all(np.isfinite(warped)) and np.ptp(warped) > 0:
            y = warped
    return standardize(y)[0]


class AdditiveGP:
    """GP posterior for ``X: (n, d)`` and standardised ``y: (n,)`` under ``decomposition``."""

    def __init__(self, X: np.ndarray, y: np.ndarray, decomposition: Decomposition, hyper: Hyper):
        self.X = np.asarray(X, dtype=float)
        self.y = np.asarray(y, dtype=float)
        self.decomposition = decomposition
        self.hyper = hyper
        K = gram(hyper, decomposition.cliques, self.X)
        K[np.diag_indices(len(K))] += hyper.noise
        self.L = cholesky_jitter(K)
        self.alpha = cho_solve((self.L, True), self.y)

    @property
    def cliques(self) -> tuple[tuple[int, ...], ...]:
        return self.decomposition.cliques

    def cross(self, clique: tuple[int, ...], Z: np.ndarray) -> np.ndarray:
        """k_g(Z, X) ``(m, n)`` for clique coordinates ``Z: (m, |g|)``."""
        return clique_cross(self.hyper, clique, np.asarray(Z, dtype=float), self.X)

    def component(self, clique: tuple[int, ...], Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance ``(m,), (m,)`` of f_g at clique coordinates ``Z: (m, |g|)``."""
        Kx = self.cross(clique, Z)
        V = solve_triangular(self.L, Kx.T, lower=True, check_finite=False)
        var = self.hyper.clique_variance(clique) - np.einsum("ij,ij->j", V, V)
        return Kx @ self.alpha, np.maximum(var, 1e-12)

    def predict(self, Xs: np.ndarray, full_cov: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Posterior of f at ``Xs: (m, d)``: mean ``(m,)`` and variance ``(m,)`` (or covariance ``(m, m)``)."""
        Xs = np.asarray(Xs, dtype=float)
        Kx = sum((self.cross(c, Xs[:, list(c)]) for c in self.cliques), np.zeros((len(Xs), len(self.X))))
        V = solve_triangular(self.L, Kx.T, lower=True, check_finite=False)
        mean = Kx @ self.alpha
        if full_cov:
            return mean, gram(self.hyper, self.cliques, Xs) - V.T @ V
        prior = sum(self.hyper.clique_variance(c) for c in self.cliques)
        return mean, np.maximum(prior - np.einsum("ij,ij->j", V, V), 1e-12)

    def sample_paths(self, Xs: np.ndarray, n_samples: int, rng: np.random.Generator,
                     n_features: int = 1024, chunk: int = 2048) -> np.ndarray:
        """Posterior draws of f at ``Xs: (m, d)``, shape ``(n_samples, m)`` (Thompson sampling).

        Pathwise conditioning (Wilson et al., "Efficiently Sampling Functions from Gaussian
        Process Posteriors", ICML 2020): a prior path f̃ from ``n_features`` random Fourier
        features per clique (Rahimi & Recht 2007: f̃_g(x) = √(2σ_g²/M) Σ_j w_j cos(ω_j·x_g + b_j),
        ω_j ~ N(0, diag(ℓ_g⁻²)), b_j ~ U[0, 2π), w_j ~ N(0, 1)) is moved by the data update
        k(x, X) K⁻¹ (y − f̃(X) − ε), ε ~ N(0, σ_n² I). The cost is O(m·(n + M·Σ|g|)) per draw,
        linear in the candidates (a joint Cholesky draw is O(m³) and m² memory); ``Xs`` is
        processed ``chunk`` rows at a time. Each draw has its own features, so over draws the
        mean and covariance are exactly the posterior's; one draw is a smooth function.
        """
        Xs = np.asarray(Xs, dtype=float)
        out = np.empty((n_samples, len(Xs)))
        for s in range(n_samples):
            features = []
            for clique in self.cliques:
                idx = list(clique)
                omega = rng.standard_normal((n_features, len(idx))) * np.exp(-self.hyper.log_ls[idx])
                phase = rng.uniform(0.0, 2.0 * np.pi, n_features)
                weight = np.sqrt(2.0 * self.hyper.clique_variance(clique) / n_features) * rng.standard_normal(n_features)
                features.append((idx, omega, phase, weight))
            noise = np.sqrt(self.hyper.noise) * rng.standard_normal(len(self.X))
            update = cho_solve((self.L, True), self.y - _fourier_path(features, self.X) - noise)
            for start in range(0, len(Xs), chunk):
                Z = Xs[start:start + chunk]
                Kx = sum((self.cross(c, Z[:, list(c)]) for c in self.cliques), np.zeros((len(Z), len(self.X))))
                out[s, start:start + chunk] = _fourier_path(features, Z) + Kx @ update
        return out


def _fourier_path(features: list, Z: np.ndarray) -> np.ndarray:
    """Σ_g Σ_j w_j cos(ω_j·z_g + b_j) at ``Z: (m, d)`` for per-clique ``(idx, ω (M, k), b (M,), w (M,))``."""
    return sum((np.cos(Z[:, idx] @ omega.T + phase) @ weight for idx, omega, phase, weight in features),
               np.zeros(len(Z)))
