"""What the GP strategies (RDUCB, GP-UCB, TuRBO) share: data, initial design, the fit,
fantasies, state.

Work happens in unit-cube coordinates (``space.to_unit``). Losses are stored as told;
a non-finite loss (a failed evaluation) is kept and enters the GP as the worst finite loss
seen, so the model avoids it without being distorted by an arbitrary penalty. Candidates
asked but not yet told are *fantasised*: they join the GP with their posterior mean as the
target, which leaves the mean unchanged but shrinks the uncertainty there, so a batch
(or asynchronous workers) spreads out instead of repeating one point.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from bbopt.optimizer import Optimizer
from bbopt.options import integer, one_of, point_in_box, positive
from bbopt.seeding import SeedLike
from bbopt.spaces import Box
from bbopt.strategies.bo.acquisition import beta_schedule
from bbopt.strategies.bo.additive_gp import OUTPUT_TRANSFORMS, AdditiveGP, transform_targets
from bbopt.strategies.bo.decomposition import Decomposition
from bbopt.strategies.bo.kernels import Hyper
from bbopt.strategies.bo.likelihood import PRIORS, Bounds, FitResult, fit_hyper


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

    Shared options:

    - ``n_init``: design points before the model is used; ``x0`` (None): a start point in
      the box's coordinates, evaluated as the first design point.
    - ``popsize``: candidates per ``ask()`` without an explicit n.
    - ``lengthscale_prior``: what the hyper-parameter fit maximises — ``"tied"`` (MAP-II under
      weak log-normal priors with median length-scale 0.3·√k for a clique of k variables,
      per-variable values tied to their mean), ``"dimension-scaled"`` (MAP-II under
      Hvarfner et al.'s log ℓ ~ N(√2 + log √k, 3), BoTorch's default) or ``None`` (type-II
      maximum likelihood, no prior at all). Both priors also put weak log-normals on the
      variance shares and the noise (``likelihood.Prior``). "tied" stays the default: on R1
      (Styblinski–Tang 20-D, 200 evaluations, seeds 0, 1) RDUCB reached regret 7.95, 5.78 with
      it, 278.9, 193.9 with "dimension-scaled" and 186.2, 136.0 with none (benchmarks/RESULTS.md).
    - ``fit_starts`` (1): L-BFGS-B runs per refit, from the best of the warm start, the
      prior's centre and 4 random draws; each runs to convergence, capped at ``fit_evals``
      objective evaluations (500; 0: never refit). ``fit_points``: the most observations a
      refit uses (a random subset beyond: each evaluation is O(n²·D + n³); the posterior
      still uses every point).
    - ``noise_var``: a fixed noise variance on standardised outputs (None: learned).
    - ``output_transform``: what the GP is fitted to — ``"standardize"`` (the losses
      standardised, the default) or ``"power"`` (HEBO's Box–Cox / Yeo–Johnson warp:
      ``transform_targets``). Measured with RDUCB (R1, R5): Rosenbrock 20-D regret 1.33e4 vs
      1.38e4 (3 seeds), Styblinski–Tang 20-D 16.8 vs 9.8 (3 and 5 seeds): no default change.
    - ``blas_threads``: BLAS threads while proposing (1; None leaves BLAS alone).
    """

    supported_spaces = (Box,)
    handles_nonfinite = True
    owner = "bo"
    bounds = Bounds()
    renamed_options: ClassVar[dict[str, str]] = {"noise": "noise_var", "batch_size": "popsize"}

    def __init__(self, space: Box, seed: SeedLike, n_init: int, popsize: int, fit_evals: int,
                 fit_points: int, noise_var: float | None, lengthscale_prior: str | None, fit_starts: int,
                 x0: Any, blas_threads: int | None, output_transform: str):
        if isinstance(space, Box) and not space.bounded:
            raise ValueError(f"{self.owner}: needs a Box with finite bounds (it models the unit cube)")
        super().__init__(space, seed)
        self.n_init = integer(n_init, "n_init", self.owner, minimum=1)
        self.popsize = integer(popsize, "popsize", self.owner, minimum=1)
        self.fit_evals = integer(fit_evals, "fit_evals", self.owner, minimum=0)
        self.fit_points = integer(fit_points, "fit_points", self.owner, minimum=2)
        self.fit_starts = integer(fit_starts, "fit_starts", self.owner, minimum=1)
        self.noise_var = None if noise_var is None else positive(noise_var, "noise_var", self.owner)
        self.lengthscale_prior = None if lengthscale_prior is None else one_of(
            lengthscale_prior, "lengthscale_prior", self.owner, PRIORS)
        self.x0 = None if x0 is None else point_in_box(x0, "x0", self.owner, space)
        self.output_transform = one_of(output_transform, "output_transform", self.owner, OUTPUT_TRANSFORMS)
        self.blas_threads = None if blas_threads is None else integer(blas_threads, "blas_threads", self.owner,
                                                                      minimum=1)
        self._X = np.zeros((0, space.dim))
        self._y = np.zeros(0)
        self._n_design = 0
        self._x0_used = False
        self.hyper = self._initial_hyper()
        self.last_fit: FitResult | None = None

    def _initial_hyper(self) -> Hyper:
        hyper = Hyper.initial(self.space.dim)
        return hyper if self.noise_var is None else hyper.with_noise(self.noise_var)

    def _fit(self, cliques: tuple, X: np.ndarray, z: np.ndarray) -> None:
        """Refit ``self.hyper`` (warm start) on ``X: (n, d)``, ``z: (n,)``, subsampled to ``fit_points``."""
        if self.fit_evals == 0:
            return
        if len(z) > self.fit_points:
            keep = np.sort(self.rng.choice(len(z), self.fit_points, replace=False))
            X, z = X[keep], z[keep]
        prior = None if self.lengthscale_prior is None else PRIORS[self.lengthscale_prior]
        self.last_fit = fit_hyper(self.hyper, cliques, X, z, prior, self.rng, self.bounds,
                                  learn_noise=self.noise_var is None, n_starts=self.fit_starts,
                                  max_evals=self.fit_evals)
        self.hyper = self.last_fit.hyper

    # ---------------------------------------------------------------- ask / tell
    def _ask(self, n: int | None, context: Any) -> np.ndarray:
        n = n or self.popsize
        n_random = max(0, min(n, self.n_init - self._n_design))
        if self._n_model_points() == 0:
            n_random = n
        self._n_design += n_random
        unit = [self._design(n_random)]
        if n_random and self.x0 is not None and not self._x0_used:
            unit[0][0] = np.clip(self.space.to_unit(self.x0), 0.0, 1.0)
            self._x0_used = True
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
        """GP targets ``(n,)`` (``output_transform``); non-finite losses count as the worst finite one."""
        return transform_targets(finite_losses(self._y if y is None else y), self.output_transform)

    def _pending_unit(self) -> np.ndarray:
        """Asked but not yet told candidates ``(p, d)`` in unit coordinates (the fantasies)."""
        if not self._pending:
            return np.zeros((0, self.space.dim))
        return np.clip(self.space.to_unit(np.array(list(self._pending.values()))), 0.0, 1.0)

    def _fantasy_batch(self, k: int, decomposition: Callable[[int], Decomposition], beta_scale: float,
                       choose: Callable[[AdditiveGP, float], np.ndarray], step: float) -> np.ndarray:
        """``k`` points ``(k, d)``, each the arg-min of an LCB (kriging believer).

        Member ``i`` uses ``decomposition(i)`` (the hyper-parameters are refitted for member
        0 only) on the data plus the pending candidates and the earlier members, those at
        the GP's posterior mean; ``choose(gp, β_t)`` returns its point, moved by ``step``
        in one coordinate while it repeats an earlier one.
        """
        X, z = self._X, self._targets()
        chosen = self._pending_unit()
        for member in range(k):
            dec = decomposition(member)
            if member == 0:
                self._fit(dec.cliques, X, z)
            gp = AdditiveGP(X, z, dec, self.hyper)
            if len(chosen):
                gp = AdditiveGP(np.vstack([X, chosen]), np.append(z, gp.predict(chosen)[0]), dec, self.hyper)
            x = choose(gp, beta_schedule(len(gp.X) + 1, beta_scale))
            chosen = np.vstack([chosen, self._dedupe(x, np.vstack([X, chosen]), step)])
        return chosen[-k:]

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
            "X": self._X.copy(), "y": self._y.copy(), "n_design": self._n_design, "x0_used": self._x0_used,
            "log_ls": self.hyper.log_ls.copy(), "log_var": self.hyper.log_var.copy(),
            "log_noise": self.hyper.log_noise,
        }

    def _load_algorithm_state(self, state: dict) -> None:
        self._X = np.asarray(state["X"], dtype=float).reshape(-1, self.space.dim)
        self._y = np.asarray(state["y"], dtype=float).reshape(-1)
        self._n_design = int(state["n_design"])
        self._x0_used = bool(state["x0_used"])
        self.hyper = Hyper(np.asarray(state["log_ls"], dtype=float), np.asarray(state["log_var"], dtype=float),
                           float(state["log_noise"]))
