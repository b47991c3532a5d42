"""FZOO: batched one-sided Rademacher probes with a step normalised by the losses' spread
(Dang et al. 2025, "FZOO: Fast Zeroth-Order Optimizer for Fine-Tuning Large Language Models
towards Adam-Scale Speed", arXiv 2506.09034).

One step: a clean loss l₀ = L(θ) and q probes lᵢ = L(θ + ε uᵢ), uᵢ ∈ {±1}^d Rademacher, all on the
step's mini-batch (q + 1 FE, evaluated batched when the problem can: the folded / vmapped copies
of :mod:`bbopt.problems.torch_batched`)::

    g = (1 / qε) Σᵢ (lᵢ − l₀) uᵢ          σ = std(l₁ … l_q)  (sample std, ddof = 1)
    θ ← θ − (lr / σ)·g                    (or any seed-based rule on g / σ)

Dividing by σ is a zeroth-order normalised SGD: the spread of the probe losses tracks ε‖∇L‖, so
steps grow where the loss is flat and shrink where it is steep; a coordinate moves by about
lr/(ε√q) whatever the loss's scale, hence the small default lr (1e-5 at ε = 1e-3). A step with σ = 0 (every probe
equal) makes no update and is logged ``kept``. The uᵢ are regenerated from their seeds (never
stored; the (seed, coefficient) log replays the run). Memory: inference plus noise chunks in place;
batched, q + 1 stacked copies of the selected weights (for small models only, as for MeZO q > 1).
"""

from __future__ import annotations

import numpy as np

from bbopt.options import integer, positive
from bbopt.params import ModelParams
from bbopt.perturbations import Clean, Direction, Spec
from bbopt.seeding import SeedLike
from bbopt.strategies.zo.mezo import SeedEstimator


class FZOO(SeedEstimator):
    """FZOO: q one-sided Rademacher probes around one clean loss, step ÷ the probes' loss std."""

    name = "fzoo"
    direction = "rademacher"

    def __init__(self, space: ModelParams, seed: SeedLike = None, *, lr: float = 1e-5, eps: float = 1e-3, q: int = 8,
                 rule: str = "sgd", momentum: float | None = None, window: int | None = None,
                 torch_optimizer: str | None = None, torch_options: dict | None = None, weight_decay: float = 0.0,
                 clip: float | None = None, schedule: str = "constant", budget: int | None = None):
        owner = self.name
        self.eps = positive(eps, "eps", owner)
        self.q = integer(q, "q", owner, minimum=2)  # σ needs two probes
        self.fe_per_step = self.q + 1
        super().__init__(space, seed, lr=lr, weight_decay=weight_decay, clip=clip, schedule=schedule, budget=budget,
                         rule=rule, momentum=momentum, window=window, torch_optimizer=torch_optimizer,
                         torch_options=torch_options)

    def _candidates(self) -> list[Spec]:
        t = self.step
        return [Clean(t)] + [Direction(t, self.new_seed(), self.eps, self.direction) for _ in range(self.q)]

    def _complete(self, specs: list[Spec], values: np.ndarray) -> None:
        if self.guard_finite(values):
            probes = values[1:]
            sigma = float(np.std(probes, ddof=1))
            seeds = [s.seed for s in specs[1:] if isinstance(s, Direction)]
            if sigma > 0:
                self._seed_update(seeds, (probes - values[0]) / (self.eps * sigma))
            else:
                self.trajectory.record(self.step, "kept", self.lr_at(self.step), seeds, [0.0] * len(seeds),
                                       direction=self.direction)
        self.step += 1
