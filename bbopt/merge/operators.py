"""Merge operators: pure functions over state dicts (name -> tensor) and over stacked tensors.

Notation: base θ₀, fine-tuned θ_k, task vectors τ_k = θ_k − θ₀, weights w_k, density d_k.

- linear / soup (Wortsman et al. 2022): θ = Σ w_k θ_k / Σ w_k (``normalize``) or Σ w_k θ_k.
- task arithmetic (Ilharco et al., ICLR 2023): θ = θ₀ + λ Σ w_k τ_k.
- TIES (Yadav et al., NeurIPS 2023): trim τ_k to its top d_k magnitudes (per tensor or over
  the whole model: ``trim``), elect γ = sgn Σ w_k τ̂_k (zero counts as +, as in mergekit),
  disjoint merge Σ_{k agrees} w_k τ̂_k, divided by Σ_{k agrees} w_k when ``normalize``
  (the paper's disjoint mean); θ = θ₀ + λ·merge.
- DARE (Yu et al., ICML 2024): τ̂_k = m_k ⊙ τ_k / d_k with m_k ~ Bernoulli(d_k); the mask is
  ``u < d_k`` for uniforms u drawn from a generator keyed by (seed, model, tensor), so a
  (candidate, seed) always gives the same mask and masks are nested in d. Combined with
  task arithmetic (``dare_linear``) or TIES's sign election (``dare_ties``).
- SLERP (two models, per tensor): θ = [sin((1−t)Ω) a + sin(tΩ) b] / sin Ω, lerp when
  |cos Ω| > 0.9995 (mergekit's rule).
- Fisher merging (Matena & Raffel, NeurIPS 2022): θ = Σ w_k F_k θ_k / Σ w_k F_k.

Top-k keeps the ``round(d·n)`` largest |τ| entries (entries tied with the k-th largest are
kept too). Tensors that are not floating point (integer buffers) are copied from the base.
Computation is in float32; results are cast back to each tensor's dtype.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from bbopt.seeding import as_seed_sequence, child_seed, torch_generator

StateDict = Mapping[str, torch.Tensor]

#: mergekit's threshold above which SLERP falls back to linear interpolation
SLERP_LERP_THRESHOLD = 0.9995
TRIM_SCOPES = ("tensor", "global")


# --------------------------------------------------------------------- tensor primitives
def keep_count(density: float, n: int) -> int:
    """How many of ``n`` entries a top-k trim at ``density`` keeps: round(d·n)."""
    return int(round(float(density) * n))


def magnitude_threshold(sorted_abs: torch.Tensor, density: float) -> float:
    """|τ| threshold of a top-k trim; ``sorted_abs``: (n,) ascending magnitudes."""
    n = sorted_abs.numel()
    k = keep_count(density, n)
    if k <= 0:
        return float("inf")
    return float(sorted_abs[n - min(k, n)])


def trim_mask(tau: torch.Tensor, density: float) -> torch.Tensor:
    """Boolean mask of the top ``density`` fraction of ``tau`` by magnitude (same shape)."""
    mags = tau.abs().reshape(-1)
    threshold = magnitude_threshold(torch.sort(mags).values, density)
    return tau.abs() >= threshold


def dare_mask(uniforms: torch.Tensor, density: Any) -> torch.Tensor:
    """Keep entries with ``u < d`` (Bernoulli(d) given u ~ U[0, 1)); ``density`` broadcasts."""
    return uniforms < torch.as_tensor(density, dtype=uniforms.dtype)


def dare_rescale(tau: torch.Tensor, keep: torch.Tensor, density: Any) -> torch.Tensor:
    """τ ⊙ m / d (zero where d = 0), the DARE update that preserves E[τ̂] = τ."""
    d = torch.as_tensor(density, dtype=tau.dtype)
    scale = torch.where(d > 0, 1.0 / torch.clamp(d, min=1e-12), torch.zeros_like(d))
    return tau * keep * scale


def elect_sign(taus: torch.Tensor, weights: Any = 1.0) -> torch.Tensor:
    """γ = sgn Σ_k w_k τ_k over the model axis (dim 0) with 0 ↦ +1; taus: (K, ...)."""
    mass = (torch.as_tensor(weights, dtype=taus.dtype) * taus).sum(0)
    return torch.where(mass >= 0, 1.0, -1.0).to(taus.dtype)


def disjoint_merge(taus: torch.Tensor, weights: Any, sign: torch.Tensor, normalize: bool) -> torch.Tensor:
    """Σ_{k agrees} w_k τ_k (÷ Σ_{k agrees} w_k if ``normalize``); agrees = nonzero with sign γ."""
    w = torch.as_tensor(weights, dtype=taus.dtype)  # broadcasts against (K, ...)
    agree = (taus != 0) & (torch.sign(taus) == sign)
    num = (w * taus * agree).sum(0)
    if not normalize:
        return num
    den = (w * agree).sum(0)
    return torch.where(den != 0, num / torch.where(den != 0, den, torch.ones_like(den)), torch.zeros_like(num))


def slerp_tensor(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of two same-shape tensors; t = 0 gives ``a``, t = 1 gives ``b``."""
    a32, b32 = a.float(), b.float()
    na, nb = a32.norm(), b32.norm()
    if na == 0 or nb == 0:
        return (1 - t) * a32 + t * b32
    cos = torch.clamp((a32 * b32).sum() / (na * nb), -1.0, 1.0)
    if abs(float(cos)) > SLERP_LERP_THRESHOLD:
        return (1 - t) * a32 + t * b32
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a32 + (torch.sin(t * omega) / so) * b32


def dare_uniforms(seed: Any, model: int, tensor: int, shape: Sequence[int]) -> torch.Tensor:
    """The U[0, 1) draws behind DARE masks, keyed by (seed, model index, tensor index)."""
    gen = torch_generator(child_seed(as_seed_sequence(seed), int(model), int(tensor)))
    return torch.rand(tuple(shape), generator=gen)


# -------------------------------------------------------------------- state-dict level
def is_mergeable(t: torch.Tensor) -> bool:
    return torch.is_floating_point(t)


def task_vectors(base: StateDict, experts: Sequence[StateDict]) -> list[dict[str, torch.Tensor]]:
    """τ_k = θ_k − θ₀ for every floating-point tensor (float32)."""
    _check_models(base, experts)
    return [{n: e[n].float() - base[n].float() for n in base if is_mergeable(base[n])} for e in experts]


def linear(models: Sequence[StateDict], weights: Sequence[float] | None = None,
           normalize: bool = True) -> dict[str, torch.Tensor]:
    """Weighted average (model soup) of K state dicts; uniform weights by default."""
    if not models:
        raise ValueError("linear: needs at least one model")
    w = _weights(weights, len(models), "linear")
    total = float(np.sum(w))
    if normalize and total == 0:
        raise ValueError("linear: weights sum to 0, cannot normalize")
    out = {}
    for name, ref in models[0].items():
        if not is_mergeable(ref):
            out[name] = ref.clone()
            continue
        acc = _tensor_sum(float(wk) * m[name].float() for wk, m in zip(w, models))
        out[name] = (acc / total if normalize else acc).to(ref.dtype)
    return out


def task_arithmetic(base: StateDict, experts: Sequence[StateDict], lam: float = 1.0,
                    weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """θ₀ + λ Σ w_k τ_k."""
    w = _weights(weights, len(experts), "task_arithmetic")
    taus = task_vectors(base, experts)
    return _apply_delta(base, {n: lam * _tensor_sum(float(wk) * t[n] for wk, t in zip(w, taus)) for n in taus[0]})


def ties(base: StateDict, experts: Sequence[StateDict], density: float | Sequence[float] = 0.2,
         lam: float = 1.0, weights: Sequence[float] | None = None, trim: str = "tensor",
         normalize: bool = True) -> dict[str, torch.Tensor]:
    """TIES-Merging: trim (per ``trim`` scope), elect sign, disjoint mean (or sum)."""
    w = _weights(weights, len(experts), "ties")
    d = _densities(density, len(experts), "ties")
    taus = task_vectors(base, experts)
    masks = _trim_masks(taus, d, trim)
    return _sign_merge(base, [{n: t[n] * m[n] for n in t} for t, m in zip(taus, masks)], w, lam, normalize)


def dare(base: StateDict, experts: Sequence[StateDict], density: float | Sequence[float] = 0.5,
         lam: float = 1.0, weights: Sequence[float] | None = None, seed: Any = 0,
         combine: str = "linear", normalize: bool = False) -> dict[str, torch.Tensor]:
    """DARE drop-and-rescale, then task arithmetic (``combine="linear"``) or TIES sign election."""
    if combine not in ("linear", "ties"):
        raise ValueError(f"dare: combine must be 'linear' or 'ties', got {combine!r}")
    w = _weights(weights, len(experts), "dare")
    d = _densities(density, len(experts), "dare")
    taus = task_vectors(base, experts)
    names = [n for n in base if is_mergeable(base[n])]
    sparse = []
    for k, tau in enumerate(taus):
        sparse.append({n: dare_rescale(tau[n], dare_mask(dare_uniforms(seed, k, j, tau[n].shape), d[k]), d[k])
                       for j, n in enumerate(names)})
    if combine == "ties":
        return _sign_merge(base, sparse, w, lam, normalize)
    return _apply_delta(base, {n: lam * _tensor_sum(float(wk) * s[n] for wk, s in zip(w, sparse)) for n in names})


def dare_ties(base: StateDict, experts: Sequence[StateDict], density: float | Sequence[float] = 0.5,
              lam: float = 1.0, weights: Sequence[float] | None = None, seed: Any = 0,
              normalize: bool = False) -> dict[str, torch.Tensor]:
    """DARE masks, then TIES sign election and disjoint sum (mergekit's ``dare_ties``)."""
    return dare(base, experts, density, lam, weights, seed, combine="ties", normalize=normalize)


def slerp(a: StateDict, b: StateDict, t: float = 0.5) -> dict[str, torch.Tensor]:
    """Per-tensor SLERP from ``a`` (t = 0) to ``b`` (t = 1)."""
    _check_models(a, [b])
    return {n: (slerp_tensor(a[n], b[n], t).to(a[n].dtype) if is_mergeable(a[n]) else a[n].clone()) for n in a}


def fisher_merge(models: Sequence[StateDict], fishers: Sequence[StateDict],
                 weights: Sequence[float] | None = None, floor: float = 1e-8) -> dict[str, torch.Tensor]:
    """θ = Σ w_k F_k θ_k / Σ w_k F_k with diagonal Fishers floored at ``floor``."""
    if len(fishers) != len(models):
        raise ValueError(f"fisher_merge: {len(models)} models but {len(fishers)} Fishers")
    w = _weights(weights, len(models), "fisher_merge")
    out = {}
    for name, ref in models[0].items():
        if not is_mergeable(ref):
            out[name] = ref.clone()
            continue
        f = [float(wk) * torch.clamp(fk[name].float(), min=floor) for wk, fk in zip(w, fishers)]
        out[name] = (_tensor_sum(fi * m[name].float() for fi, m in zip(f, models)) / _tensor_sum(f)).to(ref.dtype)
    return out


# ------------------------------------------------------------------------- helpers
def _tensor_sum(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    """Σ terms in order, as built-in ``sum`` (adding a 0-dim zero first keeps the type a tensor)."""
    return sum(terms, torch.zeros(()))


def _trim_masks(taus: list[dict], density: np.ndarray, trim: str) -> list[dict[str, torch.Tensor]]:
    if trim not in TRIM_SCOPES:
        raise ValueError(f"trim must be one of {TRIM_SCOPES}, got {trim!r}")
    if trim == "tensor":
        return [{n: trim_mask(t[n], density[k]) for n in t} for k, t in enumerate(taus)]
    masks = []
    for k, t in enumerate(taus):
        flat = torch.cat([v.abs().reshape(-1) for v in t.values()])
        thr = magnitude_threshold(torch.sort(flat).values, density[k])
        masks.append({n: t[n].abs() >= thr for n in t})
    return masks


def _sign_merge(base: StateDict, taus: list[dict], w: np.ndarray, lam: float, normalize: bool) -> dict:
    delta = {}
    for n in taus[0]:
        stack = torch.stack([t[n] for t in taus])
        wk = torch.as_tensor(w, dtype=stack.dtype).reshape((-1,) + (1,) * (stack.dim() - 1))
        delta[n] = lam * disjoint_merge(stack, wk, elect_sign(stack, wk), normalize)
    return _apply_delta(base, delta)


def _apply_delta(base: StateDict, delta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n: ((base[n].float() + delta[n]).to(base[n].dtype) if n in delta else base[n].clone()) for n in base}


def _weights(weights: Sequence[float] | None, k: int, who: str) -> np.ndarray:
    if weights is None:
        return np.ones(k)
    w = np.asarray(weights, dtype=float).reshape(-1)
    if w.size != k or not np.all(np.isfinite(w)):
        raise ValueError(f"{who}: weights must be {k} finite numbers (one per model), got {list(weights)}")
    return w


def _densities(density: float | Sequence[float], k: int, who: str) -> np.ndarray:
    d = np.broadcast_to(np.asarray(density, dtype=float), (k,)) if np.ndim(density) == 0 else \
        np.asarray(density, dtype=float).reshape(-1)
    if d.size != k or np.any(~np.isfinite(d)) or np.any(d < 0) or np.any(d > 1):
        raise ValueError(f"{who}: density must be in [0, 1], one value or one per model ({k}), got {density!r}")
    return d


def _check_models(base: StateDict, others: Sequence[StateDict]) -> None:
    for i, m in enumerate(others):
        if set(m) != set(base):
            missing = sorted(set(base) ^ set(m))[:3]
            raise ValueError(f"model {i} has different tensor names from the base (e.g. {missing})")
        for n, t in base.items():
            if tuple(m[n].shape) != tuple(t.shape):
                raise ValueError(f"model {i}: tensor {n!r} has shape {tuple(m[n].shape)}, base has {tuple(t.shape)}")
