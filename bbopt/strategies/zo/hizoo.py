"""HiZOO: SPSA preconditioned by a diagonal-Hessian estimate (Zhao et al., ICLR 2025,
"Second-Order Fine-Tuning without Pain for LLMs: A Hessian Informed Zeroth-Order Optimizer",
arXiv 2402.15173).

Σ = D⁻¹ is diagonal, D an estimate of the Hessian's diagonal (D₀ = 1: the first step is MeZO's).
One step, three forwards of the step's mini-batch (3 FE), z ~ N(0, I) regenerated from its seed::

    L₀ = L(θ),  L± = L(θ ± ε Σ^{1/2} z)
    h  = |L₊ + L₋ − 2L₀| / (2ε²)                          (curvature along Σ^{1/2} z)
    D ← (1 − α)·D + α·h·z²·D                               (the paper's Σ⁻¹ update, diag(Σ^{-1/2} z zᵀ Σ^{-1/2}) = z²·D)
    θ ← θ − lr·((L₊ − L₋)/(2ε)·Σ^{1/2} z + wd·θ)         (Σ after the update, as the authors' code)

α is ``hessian_smooth`` (the authors' scripts use constants 1e-12 … 1e-6, or 0: MeZO). Memory:
inference **+P** (one float32 buffer, Σ^{1/2}, over the selected weights; D is recomputed from it).
The buffer scales every direction the space draws (``ModelParams.noise_scale``), so in-place,
batched and replayed evaluations see θ ± ε Σ^{1/2} z alike. Time: five noise passes per step
(MeZO: three): the pending perturbation is undone with the old Σ before Σ changes. (The authors'
code multiplies z by √H instead of 1/√H; this follows the paper's algorithm.) HiZOO-L's low-rank
Σ is not offered.
"""

from __future__ import annotations

import numpy as np
import torch

from bbopt.noise import NoiseStream
from bbopt.options import number_in, positive
from bbopt.params import ModelParams
from bbopt.perturbations import Clean, Direction, Spec
from bbopt.seeding import SeedLike
from bbopt.strategies.zo.mezo import SeedEstimator


class HiZOO(SeedEstimator):
    """HiZOO: SPSA along Σ^{1/2} z with Σ⁻¹ a running diagonal-Hessian estimate (+P memory)."""

    name = "hizoo"
    rules = ("sgd",)
    direction = "gaussian"

    def __init__(self, space: ModelParams, seed: SeedLike = None, *, lr: float = 1e-3, eps: float = 1e-3,
                 hessian_smooth: float = 1e-6, weight_decay: float = 0.0, clip: float | None = None,
                 schedule: str = "constant", budget: int | None = None, rule: str = "sgd"):
        owner = self.name
        self.eps = positive(eps, "eps", owner)
        self.hessian_smooth = number_in(hessian_smooth, "hessian_smooth", owner, 0.0, 1.0)
        self.fe_per_step = 3
        super().__init__(space, seed, lr=lr, weight_decay=weight_decay, clip=clip, schedule=schedule, budget=budget,
                         rule=rule)
        #: Σ^{1/2} = D^{-1/2}, flat over the selected weights: the +P buffer
        self.sqrt_sigma = torch.ones(space.layout.n, dtype=torch.float32, device=space.device)
        space.noise_scale = self.sqrt_sigma
        self._stream = NoiseStream(space.device)
        self._z = torch.empty(min(space.chunk_size, space.layout.n), dtype=torch.float32, device=space.device)

    def _candidates(self) -> list[Spec]:
        t, s = self.step, self.new_seed()
        return [Clean(t), Direction(t, s, self.eps, self.direction), Direction(t, s, -self.eps, self.direction)]

    def _complete(self, specs: list[Spec], values: np.ndarray) -> None:
        if self.guard_finite(values):
            base, plus, minus = (float(v) for v in values)
            seed = specs[1].seed if isinstance(specs[1], Direction) else 0
            self.space.restore()  # undo L₋'s perturbation with the Σ it was made with
            self._update_sigma(seed, abs(plus + minus - 2 * base) / (2 * self.eps ** 2))
            self._seed_update([seed], np.array([(plus - minus) / (2 * self.eps)]))
        self.step += 1

    @torch.no_grad()
    def _update_sigma(self, seed: int, h: float) -> None:
        """Σ^{1/2} ← Σ^{1/2}·((1 − α) + α·h·z²)^{-1/2}, chunk by chunk (z unscaled, from its seed)."""
        alpha = self.hessian_smooth
        if alpha == 0.0:
            return
        for c, (a, b) in enumerate(self.space.layout.chunks):
            raw = self._stream.draw(seed, 0, c, b - a, self.direction, self._z)
            factor = raw.square_().mul_(alpha * h).add_(1.0 - alpha).rsqrt_()
            self.sqrt_sigma[a:b].mul_(factor)

    def reconstruct(self, space: ModelParams) -> int:
        raise ValueError("reconstruct: HiZOO's steps depend on Σ, whose curvature updates are not in the log")

    def _extra_state(self) -> dict:
        return {"sqrt_sigma": self.sqrt_sigma.clone()}

    def _load_extra_state(self, state: dict) -> None:
        self.sqrt_sigma.copy_(torch.as_tensor(state["sqrt_sigma"]).to(self.sqrt_sigma.device))
