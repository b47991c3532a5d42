"""TuRBO-1: trust-region Bayesian optimisation with Thompson sampling (written here).

Eriksson et al., "Scalable Global Optimization via Local Bayesian Optimization", NeurIPS
2019 (reference code uber-research/TuRBO, ``turbo_1.py``; there is no TuRBO on PyPI).
A run starts from a Latin hypercube of n_init points; then each step fits an ARD GP to the
run's data, centres a box of side L (per-dimension widths ∝ the length-scales, geometric
mean 1) on the run's best point, perturbs a random subset of the incumbent's coordinates
(each with probability min(1, 20/D)) inside the box for min(100·D, 5000) candidates, and
takes the arg-min of posterior function draws (Thompson sampling), one draw per point. The
draws are pathwise (random Fourier features plus the data update, ``AdditiveGP.sample_paths``),
linear in the candidates; the reference code draws jointly (O(m³) in the candidates).
After ``success_tol`` improving steps L doubles (≤ L_max); after ⌈max(4, D)/q⌉ failing
ones it halves; when L < L_min the run restarts from a fresh design.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy.stats import qmc

from bbopt.options import OptionError, integer, positive
from bbopt.seeding import SeedLike
from bbopt.spaces import Box
from bbopt.strategies.bo._base import GPStrategy
from bbopt.strategies.bo.additive_gp import AdditiveGP
from bbopt.strategies.bo.decomposition import Decomposition
from bbopt.strategies.bo.likelihood import Bounds


class TuRBO(GPStrategy):
    """TuRBO-1: one GP-guided trust region that grows on success, shrinks on failure, restarts.

    Options (defaults from the reference code):

    - ``n_init``: design points per run (None: 2·D); ``x0`` (None): a start point, the first
      design point of the first run; ``popsize``: q, points per ``ask()`` (1).
    - ``length_init`` (0.8), ``length_min`` (2⁻⁷), ``length_max`` (1.6), ``success_tol`` (3),
      ``failure_tol`` (None: ⌈max(4, D)/q⌉): the trust region's side, in unit-cube coordinates.
    - ``n_candidates`` (None: min(100·D, 5000)); ``n_features``: random Fourier features per
      Thompson draw (1024).
    - ``lengthscale_prior`` ("tied"), ``fit_starts`` (1), ``fit_evals`` (500), ``fit_points``
      (500), ``noise_var`` (None: learned), ``blas_threads`` (1): see GPStrategy.
    """

    owner = "turbo"
    #: the reference code's length-scale and noise constraints
    bounds = Bounds(lengthscale=(0.005, 2.0), noise=(5e-4, 0.2))

    def __init__(self, space: Box, seed: SeedLike = None, n_init: int | None = None, x0: Any = None,
                 popsize: int = 1, length_init: float = 0.8, length_min: float = 2.0**-7, length_max: float = 1.6,
                 success_tol: int = 3, failure_tol: int | None = None, n_candidates: int | None = None,
                 n_features: int = 1024, lengthscale_prior: str | None = "tied", fit_starts: int = 1,
                 fit_evals: int = 500, fit_points: int = 500, noise_var: float | None = None,
                 blas_threads: int | None = 1,
                 output_transform: str = "standardize"):
        d = space.dim if isinstance(space, Box) else 1
        super().__init__(space, seed, 2 * d if n_init is None else n_init, popsize, fit_evals, fit_points,
                         noise_var, lengthscale_prior, fit_starts, x0, blas_threads, output_transform)
        self.length_init = positive(length_init, "length_init", self.owner)
        self.length_min = positive(length_min, "length_min", self.owner)
        self.length_max = positive(length_max, "length_max", self.owner)
        if not self.length_min < self.length_init <= self.length_max:
            raise OptionError("length_init", f"turbo: need length_min < length_init ≤ length_max, got "
                                             f"{length_min}, {length_init}, {length_max}")
        self.success_tol = integer(success_tol, "success_tol", self.owner, minimum=1)
        default_fail = math.ceil(max(4.0, d) / self.popsize)
        self.failure_tol = default_fail if failure_tol is None else integer(failure_tol, "failure_tol", self.owner,
                                                                            minimum=1)
        self.n_candidates = (min(100 * d, 5000) if n_candidates is None
                             else integer(n_candidates, "n_candidates", self.owner, minimum=1))
        self.n_features = integer(n_features, "n_features", self.owner, minimum=1)
        self.decomposition = Decomposition.full(d)
        self._start_run(0)
        self._obs_run = np.zeros(0, dtype=np.int64)
        self._asked: dict[int, tuple[int, bool]] = {}  # id -> (run, from the design)

    def _start_run(self, run: int) -> None:
        self._run, self._n_design = run, 0
        self._length, self._successes, self._failures = self.length_init, 0, 0
        self.hyper = self._initial_hyper()

    # ---------------------------------------------------------------- ask / tell
    def _ask(self, n: int | None, context: Any) -> np.ndarray:
        n_design_before = self._n_design
        x = super()._ask(n, context)
        n_design = self._n_design - n_design_before
        for k in range(len(x)):
            self._asked[self._next_id + k] = (self._run, k < n_design)
        return x

    def _tell(self, ids: np.ndarray, x: Any, losses: np.ndarray) -> None:
        origin = [self._asked.pop(int(i)) for i in ids]
        in_run = np.array([run == self._run for run, _ in origin])
        trust_step = np.array([run == self._run and not design for run, design in origin])
        if trust_step.any():  # compare with the run's best before these points
            self._adjust(losses[trust_step])
        super()._tell(ids, x, losses)
        self._obs_run = np.concatenate([self._obs_run, np.where(in_run, self._run, -1)])
        if self._length < self.length_min:
            self._start_run(self._run + 1)

    def _adjust(self, new: np.ndarray) -> None:
        """Success/failure counting and the trust-region length update of TuRBO-1: a step
        succeeds when a finite loss improves the run's best finite loss by 1e-3 of it (a step
        whose evaluations all failed is a failure)."""
        new = new[np.isfinite(new)]
        _, y_run = self._run_data()
        best = float(np.min(y_run[np.isfinite(y_run)], initial=np.inf))
        improved = new.size > 0 and (not np.isfinite(best) or new.min() < best - 1e-3 * abs(best))
        if improved:
            self._successes, self._failures = self._successes + 1, 0
        else:
            self._successes, self._failures = 0, self._failures + 1
        if self._successes == self.success_tol:
            self._length, self._successes = min(2.0 * self._length, self.length_max), 0
        elif self._failures == self.failure_tol:
            self._length, self._failures = self._length / 2.0, 0

    def _run_data(self) -> tuple[np.ndarray, np.ndarray]:
        mask = self._obs_run == self._run
        return self._X[mask], self._y[mask]

    def _n_model_points(self) -> int:
        return int(np.sum(self._obs_run == self._run))

    def _design(self, k: int) -> np.ndarray:
        """Latin hypercube: one point per stratum of each coordinate, strata shuffled."""
        strata = np.argsort(self.rng.random((k, self.space.dim)), axis=0)
        return (strata + self.rng.random((k, self.space.dim))) / k

    # ---------------------------------------------------------------- proposal
    def _propose(self, k: int) -> np.ndarray:
        X, y = self._run_data()
        z = self._targets(y)
        self._fit(self.decomposition.cliques, X, z)
        gp = AdditiveGP(X, z, self.decomposition, self.hyper)
        center = X[int(np.argmin(z))]
        cands = self._candidates(center)
        samples = self._thompson(gp, cands, k)
        chosen = []
        for s in samples:
            j = int(np.argmin(s))
            chosen.append(cands[j])
            samples[:, j] = np.inf  # one candidate per sample
        return np.array(chosen)

    def _thompson(self, gp: AdditiveGP, cands: np.ndarray, k: int) -> np.ndarray:
        """``k`` posterior draws at the candidates ``(m, d)`` → ``(k, m)``, pathwise (linear in m)."""
        return gp.sample_paths(cands, k, self.rng, self.n_features)

    def _candidates(self, center: np.ndarray) -> np.ndarray:
        """``(m, d)`` points in the trust region: a random subset of coordinates perturbed."""
        d = self.space.dim
        weights = np.exp(self.hyper.log_ls)
        weights = weights / weights.mean()
        weights = weights / np.prod(weights ** (1.0 / d))
        lo = np.clip(center - weights * self._length / 2.0, 0.0, 1.0)
        hi = np.clip(center + weights * self._length / 2.0, 0.0, 1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Sobol balance warning for sizes that are not powers of 2
            sobol = _sobol(d, self.n_candidates, self.rng)
        mask = self.rng.random((self.n_candidates, d)) <= min(1.0, 20.0 / d)
        none = np.flatnonzero(~mask.any(axis=1))
        mask[none, self.rng.integers(0, d, size=len(none))] = True
        return np.where(mask, lo + (hi - lo) * sobol, center)

    # ----------------------------------------------------------------- state
    def _algorithm_state(self) -> dict:
        ids = np.array(sorted(self._asked), dtype=np.int64)
        return {
            **super()._algorithm_state(), "obs_run": self._obs_run.copy(), "run": self._run,
            "length": self._length, "successes": self._successes, "failures": self._failures,
            "asked_ids": ids, "asked_run": np.array([self._asked[i][0] for i in ids], dtype=np.int64),
            "asked_design": np.array([self._asked[i][1] for i in ids], dtype=np.int64),
        }

    def _load_algorithm_state(self, state: dict) -> None:
        super()._load_algorithm_state(state)
        self._obs_run = np.asarray(state["obs_run"], dtype=np.int64).reshape(-1)
        self._run, self._length = int(state["run"]), float(state["length"])
        self._successes, self._failures = int(state["successes"]), int(state["failures"])
        ids, runs, design = (np.asarray(state[k], dtype=np.int64).reshape(-1)
                             for k in ("asked_ids", "asked_run", "asked_design"))
        self._asked = {int(i): (int(r), bool(g)) for i, r, g in zip(ids, runs, design)}


def _sobol(d: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` scrambled Sobol points in [0, 1)^d, scrambled from an integer drawn from ``rng``.

    (scipy derives streams from a Generator's seed sequence, not its current state, so
    passing ``rng`` itself would break bit-identical resume; scipy ≥ 1.15 says ``rng=``.)
    """
    seed = int(rng.integers(2**63 - 1))
    try:
        engine = qmc.Sobol(d, scramble=True, rng=seed)
    except TypeError:
        engine = qmc.Sobol(d, scramble=True, seed=seed)
    return engine.random(n)
