"""Full-dimensional GP-UCB: the non-additive baseline for RDUCB.

Srinivas et al., "Gaussian Process Optimization in the Bandit Setting", ICML 2010, in the
minimisation form used by RDUCB: one RBF-ARD kernel over all D variables (the additive GP
with a single clique), its hyper-parameters refitted every iteration (MAP-II under
``lengthscale_prior``, or type-II maximum likelihood without one: see GPStrategy), and the
next point ``argmin_x μ(x) − β_t σ(x)`` with β_t = 0.5·log(2t). The acquisition is minimised
over random candidates (half uniform, half around the incumbent) and polished by L-BFGS-B.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bbopt.options import integer, positive
from bbopt.seeding import SeedLike
from bbopt.spaces import Box
from bbopt.strategies.bo._base import GPStrategy
from bbopt.strategies.bo.acquisition import polish
from bbopt.strategies.bo.additive_gp import AdditiveGP
from bbopt.strategies.bo.decomposition import Decomposition


class GPUCB(GPStrategy):
    """GP-UCB with a full-dimensional ARD kernel. Options:

    - ``n_init`` (10), ``x0`` (None), ``popsize`` (1), ``beta_scale`` (0.5), ``polish_iter`` (30)
      as for RDUCB.
    - ``n_candidates``: random acquisition candidates per point (2000), half uniform,
      half N(x_best, ``local_scale``²) in unit-cube coordinates (0.1).
    - ``lengthscale_prior`` ("tied"), ``fit_starts`` (1), ``fit_evals`` (500), ``fit_points``
      (250), ``noise_var`` (None: learned), ``blas_threads`` (1): see GPStrategy.
    """

    owner = "gp-ucb"

    def __init__(self, space: Box, seed: SeedLike = None, n_init: int = 10, x0: Any = None, popsize: int = 1,
                 beta_scale: float = 0.5, n_candidates: int = 2000, local_scale: float = 0.1, polish_iter: int = 30,
                 lengthscale_prior: str | None = "tied", fit_starts: int = 1, fit_evals: int = 500,
                 fit_points: int = 250, noise_var: float | None = None, blas_threads: int | None = 1,
                 output_transform: str = "standardize"):
        super().__init__(space, seed, n_init, popsize, fit_evals, fit_points, noise_var, lengthscale_prior,
                         fit_starts, x0, blas_threads, output_transform)
        self.beta_scale = positive(beta_scale, "beta_scale", self.owner)
        self.n_candidates = integer(n_candidates, "n_candidates", self.owner, minimum=2)
        self.local_scale = positive(local_scale, "local_scale", self.owner)
        self.polish_iter = integer(polish_iter, "polish_iter", self.owner, minimum=0)
        self.decomposition = Decomposition.full(space.dim)

    def _propose(self, k: int) -> np.ndarray:
        incumbent = self._X[int(np.argmin(self._targets()))]

        def choose(gp: AdditiveGP, beta: float) -> np.ndarray:
            cands = self._candidates(incumbent)
            mean, var = gp.predict(cands)
            return polish(gp, cands[int(np.argmin(mean - beta * np.sqrt(var)))], beta, self.polish_iter)[0]

        return self._fantasy_batch(k, lambda member: self.decomposition, self.beta_scale, choose, 1e-3)

    def _candidates(self, incumbent: np.ndarray) -> np.ndarray:
        """``(n_candidates, d)``: uniform points and Gaussian perturbations of the incumbent."""
        half = self.n_candidates // 2
        d = self.space.dim
        local = incumbent + self.local_scale * self.rng.standard_normal((self.n_candidates - half, d))
        return np.vstack([self.rng.random((half, d)), np.clip(local, 0.0, 1.0)])
