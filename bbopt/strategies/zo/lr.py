"""Likelihood-ratio gradient estimation with activation noise (ULR: Jiang et al., ICLR 2024,
"One Forward is Enough for Neural Network Training via Likelihood Ratio Method").

One step draws q noise samples per example and evaluates the step's batch replicated into
``copies`` noisy copies in one forward (copies = 2q with ``antithetic`` pairs ±ε, else q; one
replicated forward = ``copies`` FE). The problem adds ε ~ N(0, eps²·I) to the outputs of every
Linear / Conv layer whose weight is selected (or, with ``layerwise=True``, to one layer per group
of copies: L·copies FE per step, lower variance) and returns per-copy losses plus, on the first
copy, the sums Σ w·ε·xᵀ/eps² with w = L − b. Then
    ĝ_W = Σ / (copies·B),   θ ← θ − lr·(ĝ + wd·θ)    (rule ``sgd``/``sign``, or ``torch`` for momentum/Adam)

What is unbiased: E[ĝ] = ∇_W E_ε[L(W; ε)], the gradient of the expected loss *with the noise
injected* (Stein's lemma; it equals the noiseless gradient as eps → 0, and exactly for a loss
quadratic in the noisy outputs). The baseline b keeps it so:
- antithetic pairs (the default): w = (L₊ − L₋)/2 for the + copy and its negative for the − copy
  (the pair is its own baseline: any b shared by a pair cancels exactly);
- independent copies (``antithetic=False``): b is the mean loss of the example's *other* copies
  (leave-one-out, independent of the copy's own noise); ``baseline=False`` drops it (w = L).
(A leave-one-out mean over all copies, antithetic partners included, scales the estimate by
copies/(copies − 1): the partner's loss is correlated with the copy's noise.)
Parameters outside those layers (embeddings, norms) get no estimate and stay fixed.
Evaluation must run in this process (the estimate rides back on the candidate object).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from bbopt.options import integer, one_of, positive, unused
from bbopt.params import ModelParams
from bbopt.perturbations import NoisyCopy, Spec
from bbopt.seeding import SeedLike
from bbopt.strategies.zo.base import ZOEstimator
from bbopt.strategies.zo.rules import DenseEstimate


class LikelihoodRatio(ZOEstimator):
    """Likelihood ratio (ULR): activation noise, q noise samples per example in one replicated forward."""

    name = "likelihood-ratio"
    rules = ("sgd", "sign", "torch")
    renamed_options = {"sigma": "eps", "copies": "q"}

    def __init__(self, space: ModelParams, seed: SeedLike = None, *, lr: float = 0.1, eps: float = 0.1,
                 q: int = 8, antithetic: bool = True, baseline: bool | None = None, layerwise: bool = False,
                 rule: str = "sgd", torch_optimizer: str | None = None, torch_options: dict | None = None,
                 weight_decay: float = 0.0, clip: float | None = None, schedule: str = "constant",
                 budget: int | None = None):
        owner = self.name
        self.eps = positive(eps, "eps", owner)
        self.antithetic = one_of(antithetic, "antithetic", owner, (True, False))
        if self.antithetic and baseline is not None:
            raise unused("baseline", owner, "with antithetic=True (each ± pair is its own baseline)")
        self.baseline = not self.antithetic and one_of(True if baseline is None else baseline, "baseline", owner,
                                                        (True, False))
        self.q = integer(q, "q", owner, minimum=2 if self.baseline else 1)
        self.copies = 2 * self.q if self.antithetic else self.q
        self.layerwise = one_of(layerwise, "layerwise", owner, (True, False))
        self.layers = space.noise_layers()
        if not self.layers:
            raise ValueError(f"{owner}: the space selects no Linear/Conv weight or bias to inject noise into")
        covered = {i for _, _, w, b in self.layers for i in (w, b) if i is not None}
        missed = [n for i, n in enumerate(space.names) if i not in covered]
        if missed:
            warnings.warn(f"{owner}: {len(missed)} selected tensors are not Linear/Conv weights or biases "
                          f"and get no estimate (e.g. {missed[:3]})", UserWarning, stacklevel=3)
        self.fe_per_step = self.copies * (len(self.layers) if self.layerwise else 1)
        super().__init__(space, seed, lr=lr, weight_decay=weight_decay, clip=clip, schedule=schedule, budget=budget,
                         rule=rule, torch_optimizer=torch_optimizer, torch_options=torch_options)

    def _candidates(self) -> list[Spec]:
        seed = self.new_seed()
        layers = range(len(self.layers)) if self.layerwise else [-1]
        return [NoisyCopy(self.step, seed, k, self.copies, self.eps, layer, self.antithetic, self.baseline)
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
