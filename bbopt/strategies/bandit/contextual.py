"""Contextual bandits for solver parameters ("Learning to Relax", Khodak et al., ICLR 2024).

The context c is one number known before the solve (the diagonal shift of A + cI, the
diffusion coefficient of a heat-equation step). **ChebCB** models each arm's cost as a
Chebyshev series in c (degree 3 by default; the paper's 5) and samples by inverse-gap
weighting (:mod:`.igw` states the update); it approaches the instance-optimal ω. **Tsallis-INF-CB** splits
``context_range`` into ``n_bins`` equal bins and runs an independent ½-Tsallis-INF in each
(nearest bin centre), a weaker baseline. Contexts outside ``context_range`` are clipped.

**Young's prior** (ChebCB, ``prior="young"``; the arms are SOR relaxation factors ω_i and
the context is ω̂, Young's ω* of an estimated Jacobi radius: a problem with
``context_source: young``). With β̂ = 2√(ω̂ − 1)/ω̂, Young's theory gives each arm's
asymptotic SOR rate ρ(ω_i, β̂) (:func:`~bbopt.linsolve.sor_rate`), hence the shape of its
iteration count g_i = 1/(−ln ρ(ω_i, β̂)) (iterations ≈ ln(1/tol)·g_i). The arm model becomes
ŷ_i(c) = a·g_i(c) + θ_i·φ(c): one multiple a shared by all arms (least squares of the
scaled costs on the played arms' g, refitted every round) and each arm's bounded Chebyshev
fit on what a·g leaves: the bandit corrects the prior where it is wrong. From its first
cost on, the learner prefers the arm nearest ω̂ instead of exploring 20 arms uniformly.
Exact (asymptotically) for consistently ordered matrices — 5-point stencils in
lexicographic or red–black order, any 2-cyclic matrix in red–black order — when β̂ = β;
for other matrices (9-point stencils, SSOR-PCG's ω, unsymmetric A) it is only a guess that
the Chebyshev correction has to undo, and transients (near ω*, SOR's iteration matrix is
far from normal) make real counts exceed ln(1/tol)·g_i there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bbopt.linsolve.young import beta_of_omega, sor_rate
from bbopt.options import OptionError, integer, one_of, positive
from bbopt.seeding import SeedLike
from bbopt.spaces import Space
from bbopt.strategies.bandit.base import context_range as _range
from bbopt.strategies.bandit.igw import IGW
from bbopt.strategies.bandit.tsallis_inf import ETA, TsallisINF

# ChebCB's defaults, chosen on the S1 and sor-diffusion tables (S4): degree 3 and η × 10 instead of
# the reference's 5 and × 1 — at T = 400 1.21× → 1.07× the best fixed ω on sor-diffusion, 1.00× → 0.95× on S1.
DEGREE = 3
CHEBCB_ETA = 10.0


class ChebCB(IGW):
    """Inverse-gap weighting on per-arm Chebyshev regressions of cost on the context."""

    contextual = True
    owner = "chebcb"

    def __init__(self, space: Space, seed: SeedLike = None, context_range: Any = None, degree: int = DEGREE,
                 cost_offset: float = 1.0, prior: str | None = None, eta: float = CHEBCB_ETA):
        super().__init__(space, seed, cost_offset, eta)
        self._setup(integer(degree, "degree", self.owner, minimum=0), _range(context_range, self.owner))
        self.prior = one_of(prior, "prior", self.owner, (None, "young"))
        if self.prior is not None:
            values = np.asarray(self.space.values, dtype=object)
            if not all(isinstance(v, (int, float)) and 0 < v < 2 for v in values):
                raise OptionError("prior", f"{self.owner}: prior='young' needs arms that are SOR relaxation factors "
                                           f"in (0, 2), got {list(values)!r}")
            self._omegas = np.asarray(self.space.values, dtype=float)

    def prior_costs(self, contexts: np.ndarray) -> np.ndarray:
        """g_i = 1/(−ln ρ(ω_i, β̂)) ``(n, d)`` at contexts ω̂ ``(n,)`` (zeros without a prior)."""
        contexts = np.asarray(contexts, dtype=float).reshape(-1)
        if self.prior is None:
            return np.zeros((contexts.size, self.n_arms))
        out = np.empty((contexts.size, self.n_arms))
        for row, w_hat in enumerate(np.clip(contexts, 1.0, 2.0 - 1e-12)):
            rho = np.clip(sor_rate(self._omegas, beta_of_omega(w_hat)), 1e-12, 1.0 - 1e-12)
            out[row] = -1.0 / np.log(rho)
        return out


class TsallisINFCB(TsallisINF):
    """One ½-Tsallis-INF per context bin (bins of equal width over ``context_range``)."""

    contextual = True
    owner = "tsallis-inf-cb"

    def __init__(self, space: Space, seed: SeedLike = None, context_range: Any = None, n_bins: int = 5,
                 cost_offset: float = 1.0, eta: float = ETA):
        super().__init__(space, seed, cost_offset, eta)
        lo, hi = _range(context_range, self.owner)
        n_bins = positive(n_bins, "n_bins", self.owner, integer=True)
        self._init_bins(n_bins)
        self.centres = lo + (hi - lo) * (np.arange(n_bins) + 0.5) / n_bins

    def _bin(self, context: float) -> int:
        return int(np.argmin(np.abs(self.centres - context)))
