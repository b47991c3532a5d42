"""The conformance suite for bandits, with convergence measured as regret against the best
arm: the lowest single noisy cost (the generic check) is reached by uniform random play too."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bbopt.loop import minimize
from bbopt.testing import OptimizerConformance


def regret_ratio(name, problem, budget, seed, options):
    """Mean pseudo-regret per round of ``name`` run through the loop for ``budget`` rounds,
    over the expected regret of uniform random play on the same contexts (≈ 1 for random play)."""
    result = minimize(problem, name, budget, seed=seed, options=dict(options), progress=False)
    arms = np.array([rec["x"] for rec in result.history], dtype=np.int64)
    contexts = np.array([rec.get("context", np.nan) for rec in result.history], dtype=float)
    return float(problem.regret(arms, contexts).mean()) / problem.uniform_regret(contexts)


class BanditConformance(OptimizerConformance):
    """Set ``max_regret_ratio``: the largest mean regret per round, as a fraction of uniform
    random play's, allowed over ``converge_budget`` rounds (uniform play scores ≈ 1)."""

    max_regret_ratio: ClassVar[float] = 0.3
    converge_seeds = (0, 1, 2)

    def test_converges_within_budget(self) -> None:
        assert self.max_regret_ratio < 0.6, "a bound random play could pass is not a test"
        for seed in self.converge_seeds:
            ratio = regret_ratio(self.name, self.make_problem(), self.converge_budget, seed, self.options)
            assert ratio <= self.max_regret_ratio, (
                f"{self.name}: regret {ratio:.3f}× uniform play's over {self.converge_budget} rounds "
                f"(seed {seed}), allowed {self.max_regret_ratio}")
