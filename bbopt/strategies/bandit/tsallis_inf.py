"""½-Tsallis-INF (Zimmert & Seldin, AISTATS 2019), as used in "Learning to Relax"
(Khodak et al., ICLR 2024) to pick SOR's ω from iteration counts alone.

Round t = 1, 2, …: η_t = eta·2/√t (eta = 1: the theory's rate); p_i = 4 / (η_t (K̃_i − x))² with x chosen so Σ p = 1, where
K̃ are the normalised cumulative losses of :class:`~.base.ImportanceWeightedLearner`
(importance-weighted excess costs over the running mean excess cost: scale-free rates).
x is found by bisection on [K̃_min − 2√d/η, K̃_min − 2/η], which always brackets the root
(Σp ≤ 1 at the left end, ≥ 1 at the right): the reference's fixed 20 Newton steps from
x = −1 fail late in a run.
"""

from __future__ import annotations

import math

import numpy as np

from bbopt.options import positive
from bbopt.seeding import SeedLike
from bbopt.spaces import Space
from bbopt.strategies.bandit.base import ImportanceWeightedLearner


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


# Default rate multiplier, chosen on the S1 and sor-diffusion tables (S4): at T = 400 Tsallis-INF
# 1.84×/1.70× the best fixed ω with 1, 1.72×/1.62× with 3 (Tsallis-INF-CB: 1.84/1.85 → 1.62/1.73).
ETA = 3.0


class TsallisINF(ImportanceWeightedLearner):
    """½-Tsallis-INF over the arms of a Choice (adversarial and stochastic regret guarantees)."""

    owner = "tsallis-inf"

    def __init__(self, space: Space, seed: SeedLike = None, cost_offset: float = 1.0, eta: float = ETA):
        super().__init__(space, seed, cost_offset)
        self.eta = positive(eta, "eta", self.owner)
        self._init_bins(1)

    def probabilities(self, b: int = 0) -> np.ndarray:
        """Current distribution ``(d,)`` of bin ``b``."""
        t = int(self.rounds_played[b]) + 1
        return tsallis_probabilities(self.normalised_losses(b), self.eta * 2.0 / math.sqrt(t))

    def _policy(self, context: float) -> tuple[np.ndarray, np.ndarray | None]:
        return self.probabilities(self._bin(context)), None
