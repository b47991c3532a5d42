"""Exp3 with importance-weighted losses (Auer et al., 2002), anytime learning rate.

p_i ∝ exp(−η_t K̃_i), η_t = eta·√(2 ln d / (d t)) in round t = 1, 2, …, with K̃ the
normalised cumulative losses of :class:`~.base.ImportanceWeightedLearner` (the same
scale-free normalisation as Tsallis-INF). A baseline: its regret is √T-type in both
stochastic and adversarial streams, never logarithmic.
"""

from __future__ import annotations

import math

import numpy as np

from bbopt.options import positive
from bbopt.seeding import SeedLike
from bbopt.spaces import Space
from bbopt.strategies.bandit.base import ImportanceWeightedLearner


class Exp3(ImportanceWeightedLearner):
    """Exponential weights on normalised cumulative cost estimates; ``eta`` scales the rate."""

    owner = "exp3"

    def __init__(self, space: Space, seed: SeedLike = None, eta: float = 1.0, cost_offset: float = 1.0):
        super().__init__(space, seed, cost_offset)
        self.eta = positive(eta, "eta", self.owner)
        self._init_bins(1)

    def probabilities(self) -> np.ndarray:
        """Current distribution ``(d,)``."""
        t = int(self.rounds_played[0]) + 1
        rate = self.eta * math.sqrt(2.0 * math.log(max(self.n_arms, 2)) / (self.n_arms * t))
        logits = -rate * self.normalised_losses()
        w = np.exp(logits - logits.max())
        return w / w.sum()

    def _policy(self, context: float) -> tuple[np.ndarray, np.ndarray | None]:
        return self.probabilities(), None
