"""What the GP strategies (RDUCB, GP-UCB, TuRBO) share: data, initial design, fantasies, state.

Work happens in unit-cube coordinates (``space.to_unit``). Losses are stored as told;
a non-finite loss (a failed evaluation) is kept and enters the GP as the worst finite loss
seen, so the model avoids it without being distorted by an arbitrary penalty. Candidates
asked but not yet told are *fantasised*: they join the GP with their posterior mean as the
target, which leaves the mean unchanged but shrinks the uncertainty there, so a batch
(or asynchronous workers) spreads out instead of repeating one point.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from bbopt.optimizer import Optimizer
from bbopt.seeding import SeedLike
from bbopt.spaces import Box
from bbopt.strategies.bo.additive_gp import standardize
from bbopt.strategies.bo.kernels import Hyper
from bbopt.strategies.bo.likelihood import Bounds, fit_hyper


def positive_int(value: Any, name: str, owner: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def positive_float(value: Any, name: str, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 < value < np.inf:
        raise ValueError(f"{owner}: {name} must be a positive number, got {value!r}")
    return float(value)


def _blas_limit(threads: int | None) -> Any:
    """Cap BLAS threads: GP matrices here are small (n ≤ ~1000), and threaded BLAS on a busy
    machine spins and oversubscribes (measured here: 14× slower wall time at load 9)."""
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl ships with scikit-learn; without it BLAS keeps its setting
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def finite_losses(y: np.ndarray) -> np.ndarray:
    """``y`` with non-finite entries replaced by the worst finite loss (0 if none is finite)."""
    finite = np.isfinite(y)
    return np.where(finite, y, y[finite].max() if finite.any() else 0.0)


class GPStrategy(Optimizer):
    """Base of the GP strategies: ``n_init`` design points first, then ``_propose(k)``.

    Shared options: ``fit_evals`` likelihood evaluations per refit (0: never refit),
    ``fit_points`` the most observations a refit uses (a random subset beyond: the fit is
    O(n³) per evaluation, the posterior still uses every point), ``noise`` a fixed noise
    variance on standardised outputs (None: learned), ``blas_threads`` the BLAS threads
    while proposing (1; None leaves BLAS alone).
    """

    supported_spaces = (Box,)
    handles_nonfinite = True
    owner = "bo"
    bounds = Bounds()

    def __init__(self, space: Box, seed: SeedLike, n_init: int, batch_size: int, fit_evals: int,
                 fit_points: int, noise: float | None, blas_threads: int | None = 1):
        if isinstance(space, Box) and not space.bounded:
            raise ValueError(f"{self.owner}: needs a Box with finite bounds (it models the unit cube)")
        super().__init__(space, seed)
        self.n_init = positive_int(n_init, "n_init", self.owner)
        self.batch_size = positive_int(batch_size, "batch_size", self.owner)
        self.fit_evals = positive_int(fit_evals, "fit_evals", self.owner, minimum=0)
        self.fit_points = positive_int(fit_points, "fit_points", self.owner, minimum=2)
        self.noise = None if noise is None else positive_float(noise, "noise", self.owner)
        self.blas_threads = None if blas_threads is None else positive_int(blas_threads, "blas_threads", self.owner)
        self._X = np.zeros((0, space.dim))
        self._y = np.zeros(0)
        self._n_design = 0
        self.hyper = self._initial_hyper()

    def _initial_hyper(self) -> Hyper:
        hyper = Hyper.initial(self.space.dim)
        return hyper if self.noise is None else hyper.with_noise(self.noise)

    def _fit(self, cliques: tuple, X: np.ndarray, z: np.ndarray) -> None:
        """Refit ``self.hyper`` (warm start) on ``X: (n, d)``, ``z: (n,)``, subsampled to ``fit_points``."""
        if self.fit_evals == 0:
            return
        if len(z) > self.fit_points:
            keep = np.sort(self.rng.choice(len(z), self.fit_points, replace=False))
            X, z = X[keep], z[keep]
        self.hyper = fit_hyper(self.hyper, cliques, X, z, self.bounds, learn_noise=self.noise is None,
                               max_evals=self.fit_evals)

    # ---------------------------------------------------------------- ask / tell
    def _ask(self, n: int | None, context: Any) -> np.ndarray:
        n = n or self.batch_size
        n_random = max(0, min(n, self.n_init - self._n_design))
        if self._n_model_points() == 0:
            n_random = n
        self._n_design += n_random
        unit = [self._design(n_random)]
        if n > n_random:
            with _blas_limit(self.blas_threads):
                unit.append(self._propose(n - n_random))
        return self.space.clip(self.space.from_unit(np.concatenate(unit)))

    def _tell(self, ids: np.ndarray, x: Any, losses: np.ndarray) -> None:
        self._X = np.vstack([self._X, np.clip(self.space.to_unit(np.asarray(x)), 0.0, 1.0)])
        self._y = np.concatenate([self._y, losses])

    def _n_model_points(self) -> int:
        """Observations the model would be fitted on (none: keep sampling the design)."""
        return len(self._y)

    def _design(self, k: int) -> np.ndarray:
        """``k`` initial points ``(k, d)``, uniform in the unit cube (as RDUCB's random init)."""
        return self.rng.random((k, self.space.dim))

    def _propose(self, k: int) -> np.ndarray:
        """``k`` model-based points ``(k, d)`` in the unit cube."""
        raise NotImplementedError

    # --------------------------------------------------------------- helpers
    def _targets(self, y: np.ndarray | None = None) -> np.ndarray:
        """Standardised targets ``(n,)``; non-finite losses count as the worst finite one."""
        return standardize(finite_losses(self._y if y is None else y))[0]

    def _pending_unit(self) -> np.ndarray:
        """Asked but not yet told candidates ``(p, d)`` in unit coordinates (the fantasies)."""
        if not self._pending:
            return np.zeros((0, self.space.dim))
        return np.clip(self.space.to_unit(np.array(list(self._pending.values()))), 0.0, 1.0)

    def _dedupe(self, x: np.ndarray, others: np.ndarray, step: float) -> np.ndarray:
        """Move one coordinate of ``x`` by ``step`` while it repeats a row of ``others``."""
        x = x.copy()
        for _ in range(100):
            if len(others) == 0 or np.abs(others - x).max(axis=1).min() > 1e-9:
                break
            i = int(self.rng.integers(len(x)))
            up = x[i] + step <= 1.0 and (x[i] - step < 0.0 or self.rng.random() < 0.5)
            x[i] += step if up else -step
        return np.clip(x, 0.0, 1.0)

    # ----------------------------------------------------------------- state
    def _algorithm_state(self) -> dict:
        return {
            "X": self._X.copy(), "y": self._y.copy(), "n_design": self._n_design,
            "log_ls": self.hyper.log_ls.copy(), "log_var": self.hyper.log_var.copy(),
            "log_noise": self.hyper.log_noise,
        }

    def _load_algorithm_state(self, state: dict) -> None:
        self._X = np.asarray(state["X"], dtype=float).reshape(-1, self.space.dim)
        self._y = np.asarray(state["y"], dtype=float).reshape(-1)
        self._n_design = int(state["n_design"])
        self.hyper = Hyper(np.asarray(state["log_ls"], dtype=float), np.asarray(state["log_var"], dtype=float),
                           float(state["log_noise"]))
