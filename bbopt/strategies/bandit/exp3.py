"""Exp3 with importance-weighted losses (Auer et al., 2002), anytime learning rate.

p_i ∝ exp(−η_t K̃_i), η_t = eta·√(2 ln d / (d t)), K̃ = K / s: cumulative importance-
weighted excess costs (y − offset)/p of each arm, normalised by the running mean excess
cost s, the same scale-free normalisation as Tsallis-INF. A baseline: its regret is
√T-type in both stochastic and adversarial streams, never logarithmic.
"""

from __future__ import annotations

import math

import numpy as np

from bbopt.seeding import SeedLike
from bbopt.spaces import Space
from bbopt.strategies.bandit.base import BanditOptimizer, positive


class Exp3(BanditOptimizer):
    """Exponential weights on normalised cumulative cost estimates; ``eta`` scales the rate."""

    def __init__(self, space: Space, seed: SeedLike = None, eta: float = 1.0, cost_offset: float = 1.0):
        super().__init__(space, seed, cost_offset)
        self.eta = positive(eta, "exp3: eta")
        self.K = np.zeros(self.n_arms)
        self.t = 1
        self.cost_sum = 0.0

    def probabilities(self) -> np.ndarray:
        scale = self.cost_sum / (self.t - 1) if self.t > 1 and self.cost_sum > 0 else 1.0
        eta = self.eta * math.sqrt(2.0 * math.log(max(self.n_arms, 2)) / (self.n_arms * self.t))
        logits = -eta * self.K / scale
        w = np.exp(logits - logits.max())
        return w / w.sum()

    def _policy(self, context: float) -> tuple[np.ndarray, np.ndarray | None]:
        return self.probabilities(), None

    def _update(self, arm: int, excess: float, prob: float, context: float, extra: float) -> None:
        self.K[arm] += excess / prob
        self.cost_sum += excess
        self.t += 1

    def _learner_state(self) -> dict:
        return {"K": self.K.copy(), "t": self.t, "cost_sum": self.cost_sum}

    def _load_learner_state(self, state: dict) -> None:
        self.K = np.array(state["K"], dtype=float)
        self.t = int(state["t"])
        self.cost_sum = float(state["cost_sum"])
