"""LOZO / LOZO-M: two-point SPSA along low-rank directions with a lazily kept subspace (Chen et
al., ICLR 2025, "Enhancing Zeroth-order Fine-tuning for Language Models with Low-rank
Structures", arXiv 2410.07698).

Every weight W (m×n, ≥ 2-D tensors viewed as (shape[0], rest)) is perturbed along Z = U Vᵀ/√r:
U ∈ R^{m×r} Gaussian, fresh every step; V ∈ R^{n×r} Gaussian, kept for ``subspace_every`` steps
(ν); 0-/1-D tensors along Gaussian z as in MeZO. One step, q directions sharing V (2q FE)::

    c_j = (L(θ + εZ_j) − L(θ − εZ_j)) / 2ε
    θ ← θ − lr·((1/q) Σ_j c_j Z_j + wd·θ)                               (rule="sgd": LOZO)
    N ← β N + (1 − β)(1/q) Σ_j c_j U_j/√r;   W ← W − lr·N Vᵀ            (rule="momentum": LOZO-M)

With Z scaled to unit mean-square entries, the paper's (ε, η) with Z = UVᵀ are ``eps`` = ε√r and
the same lr (its ĝ = c·UVᵀ/r). LOZO-M keeps the momentum N in the m×r factor of each weight (and a
plain buffer for 0-/1-D tensors) and carries it into a new subspace as N V_oldᵀ V_new / n.
Memory: inference plus the factors r·(m + n) per weight (LOZO-M adds r·m per weight and the 0-/1-D
tensors' size); directions are regenerated from seeds (:mod:`bbopt.lowrank`), so the (seed,
coefficient) log replays a LOZO run.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from bbopt.lowrank import lazy_seed, lazy_tag
from bbopt.options import integer, positive
from bbopt.params import ModelParams
from bbopt.perturbations import Direction, Spec
from bbopt.seeding import SeedLike
from bbopt.strategies.zo.mezo import SeedEstimator
from bbopt.strategies.zo.rules import SGD, Estimate, Rule, SeedEstimate


class LOZO(SeedEstimator):
    """LOZO: SPSA along U·Vᵀ per weight, V kept for ``subspace_every`` steps; rule="momentum" is LOZO-M."""

    name = "lozo"
    rules: ClassVar[tuple[str, ...]] = ("sgd", "momentum")
    family = "lowrank"

    def __init__(self, space: ModelParams, seed: SeedLike = None, *, lr: float = 1e-3, eps: float = 1e-3, q: int = 1,
                 rank: int = 2, subspace_every: int = 50, rule: str = "sgd", momentum: float | None = None,
                 weight_decay: float = 0.0, clip: float | None = None, schedule: str = "constant",
                 budget: int | None = None):
        owner = self.name
        self.eps = positive(eps, "eps", owner)
        self.q = integer(q, "q", owner, minimum=1)
        self.rank = integer(rank, "rank", owner, minimum=1)
        self.subspace_every = integer(subspace_every, "subspace_every", owner, minimum=1)
        self.direction = f"{self.family}:{self.rank}"
        self.fe_per_step = 2 * self.q
        super().__init__(space, seed, lr=lr, weight_decay=weight_decay, clip=clip, schedule=schedule, budget=budget,
                         rule=rule, momentum=momentum)
        self._lazy = 0  # the kept factors' tag, redrawn every subspace_every steps

    def _make_rule(self, space: ModelParams) -> Any:
        if self.rule_name == "momentum":
            return LowRankMomentum(space, self._rule_options["momentum"])
        return SGD(space)

    def _candidates(self) -> list[Spec]:
        t = self.step
        if t % self.subspace_every == 0:
            self._lazy = lazy_tag(lazy_seed(self.new_seed(), 0))
        specs: list[Spec] = []
        for _ in range(self.q):
            s = lazy_seed(self._lazy, self.new_seed())
            specs += [Direction(t, s, self.eps, self.direction), Direction(t, s, -self.eps, self.direction)]
        return specs

    def _complete(self, specs: list[Spec], values: np.ndarray) -> None:
        if self.guard_finite(values):
            seeds = [s.seed for s in specs[0::2] if isinstance(s, Direction)]
            self._seed_update(seeds, (values[0::2] - values[1::2]) / (2 * self.eps))
        self.step += 1

    def _extra_state(self) -> dict:
        return {"lazy": self._lazy}

    def _load_extra_state(self, state: dict) -> None:
        self._lazy = int(state["lazy"])


class LowRankMomentum(Rule):
    """LOZO-M: momentum N (m×r) per weight in the current subspace; a dense buffer for 0-/1-D tensors."""

    def __init__(self, space: ModelParams, beta: float):
        super().__init__(space)
        self.beta = beta
        self.tag: int | None = None  # lazy tag of the subspace N lives in
        self.buffers: list[torch.Tensor | None] = [None] * len(space.tensors)

    @torch.no_grad()
    def step(self, estimate: Estimate, lr: float, weight_decay: float) -> None:
        if not isinstance(estimate, SeedEstimate):
            raise TypeError("LOZO-M's momentum takes a low-rank seed estimate")
        space, beta = self.space, self.beta
        space.restore()  # a pending perturbation: the step moves θ itself
        parts = [space.lowrank_factors(s, estimate.direction) for s in estimate.seeds]
        tag = lazy_tag(estimate.seeds[0])
        if self.tag is not None and tag != self.tag:
            old = space.lowrank_factors(lazy_seed(self.tag, 0), estimate.direction)
            for ti, (n_buf, was, now) in enumerate(zip(self.buffers, old, parts[0])):
                if n_buf is not None and was is not None and now is not None:
                    self.buffers[ti] = n_buf @ (was[1].T @ now[1]) / was[1].shape[0]
        self.tag = tag
        dense = _dense_parts(space, estimate, [ti for ti, part in enumerate(parts[0]) if part is None])
        for ti, p in enumerate(space.tensors):
            first = parts[0][ti]
            if first is None:
                g = dense[ti].view(p.shape)
            else:
                g = torch.zeros_like(first[0])
                for coef, fac in zip(estimate.coefs, parts):
                    part = fac[ti]
                    assert part is not None, "every seed of a step has the same tensor kinds"
                    g.add_(part[0], alpha=coef)
            buf = self.buffers[ti]
            buf = g.mul_(1 - beta) if buf is None else buf.mul_(beta).add_(g, alpha=1 - beta)
            self.buffers[ti] = buf
            if weight_decay and p.dim() >= 2:
                p.mul_(1.0 - lr * weight_decay)
            if first is None:
                p.add_(buf.to(p.dtype), alpha=-lr)
            else:
                _add_low_rank(p, buf, first[1], -lr, space.chunk_size)
        space.version += 1

    def state_dict(self) -> dict:
        return {"tag": -1 if self.tag is None else self.tag,
                "buffers": [torch.empty(0) if b is None else b.clone() for b in self.buffers],
                "set": [b is not None for b in self.buffers]}

    def load_state_dict(self, state: dict) -> None:
        self.tag = None if int(state["tag"]) < 0 else int(state["tag"])
        self.buffers = [torch.as_tensor(b).clone() if bool(s) else None for b, s in zip(state["buffers"], state["set"])]


def _dense_parts(space: ModelParams, estimate: SeedEstimate, chosen: list[int]) -> dict[int, torch.Tensor]:
    """Σ_j c_j z_j of the ``chosen`` (0-/1-D) tensors, flat, in one noise pass over the chunks holding them."""
    out = {ti: torch.zeros(space.tensors[ti].numel(), device=space.device) for ti in chosen}
    for c, pieces in enumerate(space.layout.pieces):
        mine = [piece for piece in pieces if piece[0] in out]
        if not mine:
            continue
        for seed, coef, noise in estimate.terms():
            z = space.delta(seed, noise, c, coef)
            for ti, a_t, b_t, a_z, b_z in mine:
                out[ti][a_t:b_t] += z[a_z:b_z]
    return out


def _add_low_rank(p: torch.Tensor, left: torch.Tensor, right: torch.Tensor, alpha: float, chunk: int) -> None:
    """p (viewed as m×n) += alpha·left @ rightᵀ, a block of rows at a time (transient ≤ one chunk)."""
    flat = p.data.view(p.shape[0], -1)
    rows = max(1, chunk // flat.shape[1])
    for a in range(0, flat.shape[0], rows):
        flat[a:a + rows].add_((left[a:a + rows] @ right.T).to(p.dtype), alpha=alpha)
