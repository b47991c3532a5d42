"""Type-II maximum likelihood for the additive GP, with analytic gradients.

For standardised targets ``y: (n,)`` and ``K = Σ_g k_g(X, X) + σ_n² I`` the negative log
marginal likelihood is ``½ yᵀK⁻¹y + ½ log|K| + ½ n log 2π`` and its gradient is
``−½ tr((ααᵀ − K⁻¹) ∂K/∂θ)`` with ``α = K⁻¹y`` (Rasmussen & Williams 2006, eq. 5.9).
The hyper-parameters (log length-scales, log variance shares, optionally log noise) are
fitted by L-BFGS-B from a warm start with a bounded number of function evaluations, as
RDUCB refits them every iteration.
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
    """Weak log-normal priors plus a tie between variables: the fit is MAP-II.

    With far fewer points than hyper-parameters (n ≈ D early in a run) the bare marginal
    likelihood is degenerate — tiny length-scales turn components into noise. So each log
    parameter has a weak prior (median, sd of the log) for unit-cube inputs and standardised
    outputs, and the per-variable log length-scales (and log variances) are pulled toward
    their across-variable mean with sd ``tie``: early fits act like one shared length-scale
    and variance (well determined from few points); per-variable differences appear as data
    support them. A length-scale median is ``lengthscale[0]·√k`` for a clique of k variables
    (typical distances grow like √k; Hvarfner et al., ICML 2024); ``variance[0]`` is per unit
    of total variance (divided by D).
    """

    lengthscale: tuple[float, float] = (0.3, 1.0)
    variance: tuple[float, float] = (1.0, 1.5)
    noise: tuple[float, float] = (1e-3, 2.0)
    tie: float = 0.5

    def penalty(self, theta: np.ndarray, cliques: tuple, learn_noise: bool) -> tuple[float, np.ndarray]:
        """−log prior (up to a constant) and its gradient for ``theta = [log ℓ, log v, log σ²?]``."""
        d = (len(theta) - int(learn_noise)) // 2
        size = np.ones(d)
        for clique in cliques:
            size[list(clique)] = np.maximum(size[list(clique)], len(clique))
        shift = np.concatenate([np.log(np.sqrt(size)), np.zeros(d)] + ([[0.0]] if learn_noise else []))
        mean: list[np.ndarray | list[float]] = [np.full(d, np.log(self.lengthscale[0])), np.full(d, np.log(self.variance[0] / d))]
        sd: list[np.ndarray | list[float]] = [np.full(d, self.lengthscale[1]), np.full(d, self.variance[1])]
        if learn_noise:
            mean.append([np.log(self.noise[0])])
            sd.append([self.noise[1]])
        sd_all = np.concatenate(sd)
        z = (theta - shift - np.concatenate(mean)) / sd_all
        value, grad = 0.5 * float(z @ z), z / sd_all
        for part in (slice(0, d), slice(d, 2 * d)):  # the tie: Σ_i (θ_i − θ̄)² / 2 tie²
            dev = (theta[part] - shift[part]) - np.mean(theta[part] - shift[part])
            value += 0.5 * float(dev @ dev) / self.tie**2
            grad[part] += dev / self.tie**2
        return value, grad


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


def fit_hyper(hyper: Hyper, cliques: tuple, X: np.ndarray, y: np.ndarray, bounds: Bounds = Bounds(),
              learn_noise: bool = True, max_evals: int = 20, prior: Prior | None = Prior()) -> Hyper:
    """Warm-started L-BFGS-B on NLL (+ −log prior); the best hyper-parameters found, never worse."""
    d = X.shape[1]
    lo = np.concatenate([np.full(d, np.log(bounds.lengthscale[0])), np.full(d, np.log(bounds.variance[0]))])
    hi = np.concatenate([np.full(d, np.log(bounds.lengthscale[1])), np.full(d, np.log(bounds.variance[1]))])
    if learn_noise:
        lo = np.append(lo, np.log(bounds.noise[0]))
        hi = np.append(hi, np.log(bounds.noise[1]))

    def unpack(theta: np.ndarray) -> Hyper:
        noise = float(theta[2 * d]) if learn_noise else hyper.log_noise
        return Hyper(theta[:d].copy(), theta[d:2 * d].copy(), noise)

    best: dict = {"nll": np.inf, "hyper": hyper}

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        h = unpack(theta)
        try:
            nll, grad = neg_log_likelihood(h, cliques, X, y, learn_noise)
        except np.linalg.LinAlgError:
            return 1e25, np.zeros_like(theta)
        if prior is not None:
            penalty, p_grad = prior.penalty(theta, cliques, learn_noise)
            nll, grad = nll + penalty, grad + p_grad
        if np.isfinite(nll) and nll < best["nll"]:
            best.update(nll=nll, hyper=h)
        return nll, grad

    theta0 = np.concatenate([hyper.log_ls, hyper.log_var] + ([[hyper.log_noise]] if learn_noise else []))
    theta0 = np.clip(theta0, lo, hi)
    minimize(objective, theta0, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)),
             options={"maxfun": max(1, int(max_evals)), "maxiter": max(1, int(max_evals))})
    return best["hyper"]
