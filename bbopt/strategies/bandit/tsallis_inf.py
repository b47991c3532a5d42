"""½-Tsallis-INF (Zimmert & Seldin, AISTATS 2019), as used in "Learning to Relax"
(Khodak et al., ICLR 2024) to pick SOR's ω from iteration counts alone.

Round t: η_t = 2/√t; p_i = 4 / (η_t (K̃_i − x))² with x chosen so Σ p = 1, where
K̃ = K / s, K_i = Σ importance-weighted excess costs (y − 1)/p of arm i and s the running
mean excess cost (scale-free rates). x is found by bisection on
[K̃_min − 2√d/η, K̃_min − 2/η], which always brackets the root (Σp ≤ 1 at the left end,
≥ 1 at the right): the reference's fixed 20 Newton steps from x = −1 fail late in a run.
"""

from __future__ import annotations

import math

import numpy as np

from bbopt.seeding import SeedLike
from bbopt.spaces import Space
from bbopt.strategies.bandit.base import BanditOptimizer


def tsallis_probabilities(k_tilde: np.ndarray, eta: float) -> np.ndarray:
    """The ½-Tsallis-INF distribution ``p: (d,)`` for normalised cumulative losses ``k_tilde: (d,)``.

    Bisection on u = K̃_min − x down to adjacent floats, so Σ p = 1 to ~1e-15 at any round
    and any cost scale (the sampler's renormalisation is then a no-op, not a correction).
    """
    k = np.asarray(k_tilde, dtype=float)
    gaps = k - k.min()  # solve for u = K̃_min − x ∈ [2/η, 2√d/η]: well scaled at any round
    lo, hi = 2.0 / eta, 2.0 * math.sqrt(k.size) / eta
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if (4.0 / (eta * (gaps + mid)) ** 2).sum() > 1.0:
            lo = mid
        else:
            hi = mid
    p_lo, p_hi = 4.0 / (eta * (gaps + lo)) ** 2, 4.0 / (eta * (gaps + hi)) ** 2
    return p_lo if abs(p_lo.sum() - 1.0) <= abs(p_hi.sum() - 1.0) else p_hi

class TsallisINF(BanditOptimizer):
    """½-Tsallis-INF over the arms of a Choice (adversarial and stochastic regret guarantees).

    ``n_bins`` > 1 is used by the contextual variant: one independent learner per bin.
    """

    def __init__(self, space: Space, seed: SeedLike = None, cost_offset: float = 1.0):
        super().__init__(space, seed, cost_offset)
        self._init_bins(1)

    def _init_bins(self, n_bins: int) -> None:
        self.K = np.zeros((n_bins, self.n_arms))  # importance-weighted excess costs
        self.t = np.ones(n_bins, dtype=np.int64)  # round counter per bin (η_t = 2/√t)
        self.cost_sum = np.zeros(n_bins)

    def _bin(self, context: float) -> int:
        return 0

    def probabilities(self, b: int = 0) -> np.ndarray:
        """Current distribution ``(d,)`` of bin ``b`` (before renormalisation)."""
        n_seen = self.t[b] - 1
        scale = self.cost_sum[b] / n_seen if n_seen > 0 and self.cost_sum[b] > 0 else 1.0
        return tsallis_probabilities(self.K[b] / scale, 2.0 / math.sqrt(self.t[b]))

    def _policy(self, context: float) -> tuple[np.ndarray, np.ndarray | None]:
        return self.probabilities(self._bin(context)), None

    def _update(self, arm: int, excess: float, prob: float, context: float, extra: float) -> None:
        b = self._bin(context)
        self.K[b, arm] += excess / prob
        self.cost_sum[b] += excess
        self.t[b] += 1

    def _learner_state(self) -> dict:
        return {"K": self.K.copy(), "t": self.t.copy(), "cost_sum": self.cost_sum.copy()}

    def _load_learner_state(self, state: dict) -> None:
        self.K = np.array(state["K"], dtype=float)
        self.t = np.array(state["t"], dtype=np.int64)
        self.cost_sum = np.array(state["cost_sum"], dtype=float)
