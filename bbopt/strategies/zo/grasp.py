"""ZO-GraSP layer densities for sparse CGE (DeepZero, Chen et al. ICLR 2024, after GraSP, Wang et al. 2020).

Prune-at-init score from zeroth-order estimates only: with g₀ = RGE(θ) and g₁ = RGE(θ + ε·g₀)
(q one-sided Gaussian directions each, the same directions both times),
    Hg ≈ (g₁ − g₀)/ε,    score = −θ ⊙ Hg,
keep the ``density`` fraction of coordinates with the largest |score| over the whole model and
read off each tensor's kept fraction. Only those per-layer ratios are used: CGE then draws a
*random* mask inside each tensor at its ratio (the model is not pruned).
"""

from __future__ import annotations

import torch

from bbopt.params import ModelParams
from bbopt.strategies.zo.rules import SeedEstimate, seed_tensor


def rge(space: ModelParams, seeds: list[int], clean: float, plus: list[float], eps: float) -> dict[int, torch.Tensor]:
    """One-sided random gradient estimate (1/q) Σ_j (L_j − L₀)/ε · z_j as dense tensors (+P memory)."""
    coefs = [(v - clean) / (eps * len(seeds)) for v in plus]
    est = SeedEstimate(seeds, coefs, "gaussian")
    return {ti: seed_tensor(space, est, ti) for ti in range(len(space.tensors))}


def layer_ratios(theta: list[torch.Tensor], hg: dict[int, torch.Tensor], density: float) -> list[float]:
    """Per-tensor kept fractions when the top ``density`` of |−θ ⊙ Hg| is kept globally."""
    scores = [(-t.float() * hg[i]).abs().reshape(-1) for i, t in enumerate(theta)]
    sizes = torch.tensor([s.numel() for s in scores])
    k = max(1, round(density * int(sizes.sum())))
    top = torch.cat(scores).topk(k).indices  # exactly k coordinates, ties broken by position
    owner = torch.bucketize(top, torch.cumsum(sizes, 0), right=True)
    kept = torch.bincount(owner, minlength=len(scores))
    return [max(1, int(n)) / int(size) for n, size in zip(kept, sizes)]
