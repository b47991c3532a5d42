"""Full-dimensional GP-UCB: the non-additive baseline for RDUCB.

Srinivas et al., "Gaussian Process Optimization in the Bandit Setting", ICML 2010, in the
minimisation form used by RDUCB: one RBF-ARD kernel over all D variables (the additive GP
with a single clique), refitted by marginal likelihood each iteration, and the next point
``argmin_x μ(x) − β_t σ(x)`` with β_t = 0.5·log(2t). The acquisition is minimised over
random candidates (half uniform, half around the incumbent) and polished by L-BFGS-B.
"""

from __future__ import annotations

import numpy as np

from bbopt.seeding import SeedLike
from bbopt.spaces import Box
from bbopt.strategies.bo._base import GPStrategy, positive_float, positive_int
from bbopt.strategies.bo.acquisition import beta_schedule, polish
from bbopt.strategies.bo.additive_gp import AdditiveGP
from bbopt.strategies.bo.decomposition import Decomposition


class GPUCB(GPStrategy):
    """GP-UCB with a full-dimensional ARD kernel. Options:

    - ``n_init`` (10), ``beta_scale`` (0.5), ``polish_iter`` (30), ``batch_size`` (1) as for RDUCB.
    - ``n_candidates``: random acquisition candidates per point (2000), half uniform,
      half N(x_best, ``local_scale``²) (0.1).
    - ``fit_evals`` (20), ``fit_points`` (250), ``noise`` (None: learned): see GPStrategy.
    """

    owner = "gp-ucb"

    def __init__(self, space: Box, seed: SeedLike = None, n_init: int = 10, beta_scale: float = 0.5,
                 n_candidates: int = 2000, local_scale: float = 0.1, polish_iter: int = 30,
                 fit_evals: int = 20, fit_points: int = 250, noise: float | None = None, batch_size: int = 1,
                 blas_threads: int | None = 1):
        super().__init__(space, seed, n_init, batch_size, fit_evals, fit_points, noise, blas_threads)
        self.beta_scale = positive_float(beta_scale, "beta_scale", self.owner)
        self.n_candidates = positive_int(n_candidates, "n_candidates", self.owner, minimum=2)
        self.local_scale = positive_float(local_scale, "local_scale", self.owner)
        self.polish_iter = positive_int(polish_iter, "polish_iter", self.owner, minimum=0)
        self.decomposition = Decomposition.full(space.dim)

    def _propose(self, k: int) -> np.ndarray:
        z, X = self._targets(), self._X
        incumbent = X[int(np.argmin(z))]
        self._fit(self.decomposition.cliques, X, z)
        gp = AdditiveGP(X, z, self.decomposition, self.hyper)
        chosen = self._pending_unit()
        for _ in range(k):
            model = gp
            if len(chosen):  # fantasies: pending points at their posterior mean
                model = AdditiveGP(np.vstack([X, chosen]), np.append(z, gp.predict(chosen)[0]),
                                   self.decomposition, self.hyper)
            beta = beta_schedule(len(model.X) + 1, self.beta_scale)
            cands = self._candidates(incumbent)
            mean, var = model.predict(cands)
            x, _ = polish(model, cands[int(np.argmin(mean - beta * np.sqrt(var)))], beta, self.polish_iter)
            chosen = np.vstack([chosen, self._dedupe(x, np.vstack([X, chosen]), 1e-3)])
        return chosen[-k:]

    def _candidates(self, incumbent: np.ndarray) -> np.ndarray:
        """``(n_candidates, d)``: uniform points and Gaussian perturbations of the incumbent."""
        half = self.n_candidates // 2
        d = self.space.dim
        local = incumbent + self.local_scale * self.rng.standard_normal((self.n_candidates - half, d))
        return np.vstack([self.rng.random((half, d)), np.clip(local, 0.0, 1.0)])
