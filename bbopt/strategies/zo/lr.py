"""Likelihood-ratio gradient estimation with activation noise (ULR: Jiang et al., ICLR 2024,
"One Forward is Enough for Neural Network Training via Likelihood Ratio Method").

One step asks K noisy copies of the step's batch (one replicated forward: K FE). The problem
adds ε ~ N(0, σ²I) to the outputs of every Linear / Conv layer whose weight is selected (or, with
``layerwise=True``, to one layer per group of K copies: L·K FE per step, lower variance) and
returns per-copy losses plus, on the first copy, the sums Σ w·ε·xᵀ/σ² with w = L − b (b: the
leave-one-out mean loss of the same example's copies; ``antithetic`` pairs ±ε). Then
    ĝ_W = Σ / (K·B),   θ ← θ − lr·(ĝ + wd·θ)    (rule ``sgd``/``sign``, or ``torch`` for momentum/Adam)
Parameters outside those layers (embeddings, norms) get no estimate and stay fixed.
Evaluation must run in this process (the estimate rides back on the candidate object).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from bbopt.params import ModelParams
from bbopt.perturbations import NoisyCopy, Spec
from bbopt.seeding import SeedLike
from bbopt.strategies.zo.base import ZOEstimator, _positive, check_int
from bbopt.strategies.zo.rules import DenseEstimate


class LikelihoodRatio(ZOEstimator):
    """Likelihood ratio (ULR): activation noise, K noisy copies in one replicated forward."""

    def __init__(self, space: ModelParams, seed: SeedLike = None, *, lr: float = 0.1, sigma: float = 0.1,
                 copies: int = 16, antithetic: bool = True, baseline: bool = True, layerwise: bool = False,
                 rule: str = "sgd", torch_optimizer: str = "sgd", torch_options: dict | None = None,
                 weight_decay: float = 0.0, clip: float | None = None, schedule: str = "constant",
                 budget: int | None = None):
        if rule == "momentum":
            raise ValueError("likelihood-ratio estimates are dense: use rule='torch', torch_optimizer='sgd', "
                             "torch_options={'momentum': 0.9} for momentum")
        self.sigma = _positive(sigma, "sigma")
        self.copies = check_int(copies, "copies", low=2 if baseline else 1)
        if antithetic and self.copies % 2:
            raise ValueError(f"copies must be even with antithetic=True, got {copies}")
        self.antithetic, self.baseline, self.layerwise = bool(antithetic), bool(baseline), bool(layerwise)
        self.layers = space.noise_layers()
        if not self.layers:
            raise ValueError("likelihood-ratio: the space selects no Linear/Conv weight or bias to inject noise into")
        covered = {i for _, _, w, b in self.layers for i in (w, b) if i is not None}
        missed = [n for i, n in enumerate(space.names) if i not in covered]
        if missed:
            warnings.warn(f"likelihood-ratio: {len(missed)} selected tensors are not Linear/Conv weights or biases "
                          f"and get no estimate (e.g. {missed[:3]})", UserWarning, stacklevel=3)
        self.fe_per_step = self.copies * (len(self.layers) if self.layerwise else 1)
        super().__init__(space, seed, lr=lr, weight_decay=weight_decay, clip=clip, schedule=schedule, budget=budget,
                         rule=rule, torch_optimizer=torch_optimizer, torch_options=torch_options)

    def _candidates(self) -> list[Spec]:
        seed = self.new_seed()
        layers = range(len(self.layers)) if self.layerwise else [-1]
        return [NoisyCopy(self.step, seed, k, self.copies, self.sigma, layer, self.antithetic, self.baseline)
                for layer in layers for k in range(self.copies)]

    def _complete(self, specs: list[Spec], values: np.ndarray) -> None:
        if self.guard_finite(values):
            grads = self._estimate(specs)
            # start at a zero tensor (not int 0) so the sum is typed a Tensor; adding 0.0 is exact
            norm = float(torch.sqrt(sum(((g.float() ** 2).sum() for g in grads.values()), torch.zeros(()))))
            grads, clipped = self.clip_dense(grads, norm)
            self.apply(DenseEstimate(grads))
            self.trajectory.record(self.step, "clipped" if clipped else "ok", self.lr_at(self.step), norm=norm)
        self.step += 1

    def _estimate(self, specs: list[Spec]) -> dict[int, torch.Tensor]:
        """ĝ per covered tensor: the attached sums of every group, divided by its row count."""
        sums: dict[int, torch.Tensor] = {}
        rows: dict[int, int] = {}
        for spec in specs:
            if not isinstance(spec, NoisyCopy) or spec.out is None:
                continue
            for ti, s in spec.out["sums"].items():
                sums[ti] = s if ti not in sums else sums[ti] + s
                rows[ti] = rows.get(ti, 0) + spec.out["rows"]
            spec.out = None  # consumed: drop the tensors
        if not sums:
            raise RuntimeError("likelihood-ratio: the candidates came back without their estimate; evaluate them "
                               "in this process (n_jobs=1) with a TorchProblem")
        return {ti: s / rows[ti] for ti, s in sums.items()}
