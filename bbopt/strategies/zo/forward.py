"""Forward gradient (Baydin et al. 2022, "Gradients without Backpropagation").

One step draws q tangents z_j (Gaussian or Rademacher, regenerated from seeds); the problem
computes the directional derivative d_j = ∇L·z_j with one jvp (``torch.func.jvp``, falling back to
``torch.autograd.forward_ad``) and reports each tangent as the pair θ ± ε·z_j worth L ± ε·d_j, so
    d_j = (v₊ − v₋) / 2ε    (exact: no finite-difference error; ε only scales the reported pair)
    θ ← θ − lr·((1/q) Σ_j d_j z_j + wd·θ)     (any seed-based rule: sgd, sign, momentum, torch)
Unbiased, E‖ĝ‖² = (d + 2)‖∇L‖² for Gaussian z. Costs one jvp (≈ 2 FE: the pair) and +P memory
for the tangents.
"""

from __future__ import annotations

import numpy as np

from bbopt.options import integer, positive
from bbopt.params import ModelParams
from bbopt.perturbations import Spec, Tangent
from bbopt.seeding import SeedLike
from bbopt.strategies.zo.base import check_direction
from bbopt.strategies.zo.mezo import SeedEstimator


class ForwardGradient(SeedEstimator):
    """Forward gradient: jvp directional derivatives along seeded tangents (q per step)."""

    name = "forward-gradient"
    renamed_options = {"h": "eps", "noise": "direction"}

    def __init__(self, space: ModelParams, seed: SeedLike = None, *, lr: float = 1e-3, q: int = 1,
                 direction: str = "gaussian", eps: float = 1e-3, rule: str = "sgd", momentum: float | None = None,
                 window: int | None = None, torch_optimizer: str | None = None, torch_options: dict | None = None,
                 weight_decay: float = 0.0, clip: float | None = None, schedule: str = "constant",
                 budget: int | None = None):
        owner = self.name
        self.q = integer(q, "q", owner, minimum=1)
        self.direction = check_direction(direction, owner, ("gaussian", "rademacher"))
        self.eps = positive(eps, "eps", owner)
        self.fe_per_step = 2 * self.q
        super().__init__(space, seed, lr=lr, weight_decay=weight_decay, clip=clip, schedule=schedule, budget=budget,
                         rule=rule, momentum=momentum, window=window, torch_optimizer=torch_optimizer,
                         torch_options=torch_options)

    def _candidates(self) -> list[Spec]:
        specs: list[Spec] = []
        for _ in range(self.q):
            s = self.new_seed()
            specs += [Tangent(self.step, s, self.eps, self.direction), Tangent(self.step, s, -self.eps, self.direction)]
        return specs

    def _complete(self, specs: list[Spec], values: np.ndarray) -> None:
        if self.guard_finite(values):
            plus, minus = values[0::2], values[1::2]
            seeds = []
            for s in specs[0::2]:
                assert isinstance(s, Tangent), "a forward-gradient step is Tangent pairs"
                seeds.append(s.seed)
            self._seed_update(seeds, (plus - minus) / (2 * self.eps))
        self.step += 1
