"""Fitting the additive GP's hyper-parameters: type-II maximum likelihood, or MAP under a prior.

For standardised targets ``y: (n,)`` and ``K = Σ_g k_g(X, X) + σ_n² I`` the negative log
marginal likelihood is ``½ yᵀK⁻¹y + ½ log|K| + ½ n log 2π`` and its gradient is
``−½ tr((ααᵀ − K⁻¹) ∂K/∂θ)`` with ``α = K⁻¹y`` (Rasmussen & Williams 2006, eq. 5.9).

What :func:`fit_hyper` maximises is ``log p(y | θ) + log p(θ)``: with a :class:`Prior` that is
MAP-II (the posterior mode of the hyper-parameters θ = log length-scales, log variance
shares, log noise), with ``prior=None`` the bare log marginal likelihood (type-II ML). It is
multi-start L-BFGS-B with the analytic gradient: the warm start (the last fit), the prior's
centre and random draws are screened by one evaluation each, and the best ``n_starts`` run
until the relative decrease of the objective falls below ``ftol`` (converged), or until
``max_evals`` evaluations (a safety cap; :class:`FitResult` says which).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_solve
from scipy.optimize import minimize

from bbopt.strategies.bo.kernels import Hyper, gram, gram_gradient

LOG_2PI = float(np.log(2 * np.pi))


@dataclass(frozen=True)
class Bounds:
    """Box constraints of the fit (natural units): length-scale, variance share, noise."""

    lengthscale: tuple[float, float] = (0.01, 20.0)
    variance: tuple[float, float] = (1e-4, 20.0)
    noise: tuple[float, float] = (1e-6, 0.5)


@dataclass(frozen=True)
class Prior:
    """Independent log-normal priors (median, sd of the log) on every hyper-parameter, and
    optionally a tie between variables.

    Inputs are unit-cube coordinates and outputs standardised. The length-scale median is
    ``lengthscale[0]·√k`` for a variable in a clique of k variables (typical distances grow
    like √k; Hvarfner et al., ICML 2024); ``variance[0]`` is per unit of total signal
    variance (a share's median is ``variance[0]/D``). With ``tie`` set, the per-variable log
    length-scales (and log variances) are also pulled toward their across-variable mean with
    sd ``tie``: early fits act like one shared length-scale and variance (well determined from
    few points); per-variable differences appear as data support them.
    """

    lengthscale: tuple[float, float]
    variance: tuple[float, float] = (1.0, 1.5)
    noise: tuple[float, float] = (1e-3, 2.0)
    tie: float | None = None

    def center(self, cliques: tuple, d: int, learn_noise: bool) -> np.ndarray:
        """The prior's median ``θ`` (the mode of each independent part)."""
        mean = [np.log(self.lengthscale[0]) + np.log(np.sqrt(_clique_size(cliques, d))),
                np.full(d, np.log(self.variance[0] / d))]
        if learn_noise:
            mean.append(np.array([np.log(self.noise[0])]))
        return np.concatenate(mean)

    def scale(self, d: int, learn_noise: bool) -> np.ndarray:
        """The sd of each log hyper-parameter ``(2d [+1],)``."""
        sd = [np.full(d, self.lengthscale[1]), np.full(d, self.variance[1])]
        if learn_noise:
            sd.append(np.array([self.noise[1]]))
        return np.concatenate(sd)

    def penalty(self, theta: np.ndarray, cliques: tuple, learn_noise: bool) -> tuple[float, np.ndarray]:
        """−log prior (up to a constant) and its gradient for ``theta = [log ℓ, log v, log σ²?]``."""
        d = (len(theta) - int(learn_noise)) // 2
        center, sd = self.center(cliques, d, learn_noise), self.scale(d, learn_noise)
        z = (theta - center) / sd
        value, grad = 0.5 * float(z @ z), z / sd
        if self.tie is not None:
            for part in (slice(0, d), slice(d, 2 * d)):  # Σ_i (θ_i − θ̄)² / 2 tie²
                dev = (theta[part] - center[part]) - np.mean(theta[part] - center[part])
                value += 0.5 * float(dev @ dev) / self.tie**2
                grad[part] += dev / self.tie**2
        return value, grad


#: the choices of the strategies' ``lengthscale_prior`` option (None: no prior, type-II ML)
PRIORS = {
    # weak priors with the tie; median length-scale 0.3·√k (bbopt's original default)
    "tied": Prior(lengthscale=(0.3, 1.0), tie=0.5),
    # Hvarfner et al. (ICML 2024), BoTorch's default since v0.12: log ℓ ~ N(√2 + log √k, 3)
    "dimension-scaled": Prior(lengthscale=(float(np.exp(np.sqrt(2.0))), float(np.sqrt(3.0)))),
}


def _clique_size(cliques: tuple, d: int) -> np.ndarray:
    """For each variable, the size of the largest clique it belongs to ``(d,)``."""
    size = np.ones(d)
    for clique in cliques:
        size[list(clique)] = np.maximum(size[list(clique)], len(clique))
    return size


@dataclass(frozen=True)
class FitResult:
    """The fitted ``hyper``, its objective (−log marginal likelihood − log prior), whether
    the best run met the convergence test, and the objective evaluations spent in all."""

    hyper: Hyper
    objective: float
    converged: bool
    n_evals: int


def cholesky_jitter(K: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of ``K``, adding diagonal jitter (up to 1e-2 · mean diagonal) if needed."""
    scale = float(np.mean(np.diag(K))) or 1.0
    jitter = 0.0
    for _ in range(8):
        try:
            return np.linalg.cholesky(K + jitter * np.eye(len(K)) if jitter else K)
        except np.linalg.LinAlgError:
            jitter = scale * (1e-9 if jitter == 0.0 else jitter / scale * 10.0)
            if jitter > 1e-2 * scale:
                break
    raise np.linalg.LinAlgError("kernel matrix is not positive definite even with jitter")


def neg_log_likelihood(hyper: Hyper, cliques: tuple, X: np.ndarray, y: np.ndarray,
                       learn_noise: bool = True) -> tuple[float, np.ndarray]:
    """NLL and its gradient w.r.t. ``[log_ls (d), log_var (d), log_noise (if learned)]``."""
    n, d = X.shape
    blocks: list = []
    K = gram(hyper, cliques, X, keep=blocks)
    K[np.diag_indices(n)] += hyper.noise
    L = cholesky_jitter(K)
    alpha = cho_solve((L, True), y)
    nll = 0.5 * float(y @ alpha) + float(np.log(np.diag(L)).sum()) + 0.5 * n * LOG_2PI
    W = np.outer(alpha, alpha)
    W -= cho_solve((L, True), np.eye(n))
    g_ls, g_var = gram_gradient(hyper, cliques, X, W, kept=blocks)
    grad = [-g_ls, -g_var]
    if learn_noise:
        grad.append(np.array([-0.5 * hyper.noise * np.trace(W)]))
    return nll, np.concatenate(grad)


def fit_hyper(hyper: Hyper, cliques: tuple, X: np.ndarray, y: np.ndarray, prior: Prior | None,
              rng: np.random.Generator, bounds: Bounds = Bounds(), learn_noise: bool = True,
              n_starts: int = 1, n_candidates: int = 4, max_evals: int = 500, ftol: float = 1e-9) -> FitResult:
    """Maximise log p(y | θ) + log p(θ) (``prior=None``: log p(y | θ) alone) over ``θ``.

    Starting points: ``hyper`` (the warm start), the prior's centre (with no prior, the
    default initial values) and ``n_candidates`` random draws (from the prior, or uniform in
    the log bounds); each is scored by one evaluation and L-BFGS-B runs from the best
    ``n_starts`` until the relative decrease per step is ≤ ``ftol`` or ``max_evals``
    evaluations. The best point seen is returned (never worse than the warm start).
    """
    d = X.shape[1]
    lo = np.concatenate([np.full(d, np.log(bounds.lengthscale[0])), np.full(d, np.log(bounds.variance[0]))]
                        + ([[np.log(bounds.noise[0])]] if learn_noise else []))
    hi = np.concatenate([np.full(d, np.log(bounds.lengthscale[1])), np.full(d, np.log(bounds.variance[1]))]
                        + ([[np.log(bounds.noise[1])]] if learn_noise else []))

    def unpack(theta: np.ndarray) -> Hyper:
        noise = float(theta[2 * d]) if learn_noise else hyper.log_noise
        return Hyper(theta[:d].copy(), theta[d:2 * d].copy(), noise)

    best: dict = {"value": np.inf, "theta": None}
    count = [0]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        count[0] += 1
        try:
            value, grad = neg_log_likelihood(unpack(theta), cliques, X, y, learn_noise)
        except np.linalg.LinAlgError:
            return 1e25, np.zeros_like(theta)
        if prior is not None:
            penalty, p_grad = prior.penalty(theta, cliques, learn_noise)
            value, grad = value + penalty, grad + p_grad
        if np.isfinite(value) and value < best["value"]:
            best.update(value=value, theta=theta.copy())
        return value, grad

    warm = np.concatenate([hyper.log_ls, hyper.log_var] + ([[hyper.log_noise]] if learn_noise else []))
    if prior is not None:
        center = prior.center(cliques, d, learn_noise)
        draws = center + prior.scale(d, learn_noise) * rng.standard_normal((n_candidates, len(lo)))
    else:
        initial = Hyper.initial(d)
        center = np.concatenate([initial.log_ls, initial.log_var] + ([[initial.log_noise]] if learn_noise else []))
        draws = lo + (hi - lo) * rng.random((n_candidates, len(lo)))
    starts = np.clip(np.vstack([warm, center, draws]), lo, hi)
    scores = [objective(s)[0] for s in starts]
    converged = []
    for i in np.argsort(scores, kind="stable")[:max(1, n_starts)]:
        res = minimize(objective, starts[i], jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)),
                       options={"maxfun": max_evals, "maxiter": max_evals, "ftol": ftol, "gtol": 1e-8})
        converged.append((res.fun, bool(res.status == 0)))
    if best["theta"] is None:  # every evaluation failed: keep the warm start
        return FitResult(hyper, np.inf, False, count[0])
    return FitResult(unpack(best["theta"]), float(best["value"]), min(converged)[1], count[0])
