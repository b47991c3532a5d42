"""Merge operators: pure functions over state dicts (name -> tensor), and the tensor primitives
they share with the in-place engine (:mod:`bbopt.merge.task_vectors`).

The semantics are mergekit's (arcee-ai/mergekit 0.1.5: ``generalized_task_arithmetic.py``,
``sparsify.py``, ``linear.py``, ``slerp.py``), the reference merge users compare with; the
tests run mergekit itself on random tensors (forced-equal DARE masks) and agree to 1e-6.
Notation: base θ₀, fine-tuned θ_k, task vectors τ_k = θ_k − θ₀, weights w_k, density d_k.

- linear / soup (Wortsman et al. 2022): θ = Σ w_k θ_k / Σ w_k (``normalize``) or Σ w_k θ_k.
- task arithmetic (Ilharco et al., ICLR 2023): θ = θ₀ + λ Σ w_k τ_k (÷ Σ w_k if ``normalize``).
- TIES (Yadav et al., NeurIPS 2023): trim τ_k to its ``max(1, int(d_k·n))`` largest
  magnitudes (d ≥ 1 keeps all, d ≤ 0 none), elect γ = sgn Σ_k w_k τ̂_k (0 counts as +),
  keep the entries whose weighted sign sgn(w_k τ̂_k) equals γ, sum w_k τ̂_k over them and,
  with ``normalize`` (the default), divide by the sum of their w_k (the paper's disjoint
  mean); θ = θ₀ + λ·merge.
- DARE (Yu et al., ICML 2024): τ̂_k = τ_k ⊙ m_k with m_k ~ Bernoulli(d_k), rescaled so that
  ‖τ̂_k‖₁ = ‖τ_k‖₁ (left unscaled when either norm is below 1e-7); then task arithmetic
  (``dare_linear``) or TIES's election and merge without the trim (``dare_ties``).
- SLERP (two models, per tensor): each tensor divided by its norm when the norm exceeds 1e-8
  (a tensor of smaller norm is used as it is), cos Ω = ⟨â, b̂⟩; lerp when |cos Ω| > 0.9995,
  else θ = [sin((1−t)Ω) a + sin(tΩ) b] / sin Ω; t = 0 gives ``a``.
- Fisher merging (Matena & Raffel, NeurIPS 2022): θ = Σ w_k F_k θ_k / Σ w_k F_k (no
  mergekit counterpart).

The papers' own variants are options (each differs from mergekit as stated):
- ``rescale="density"``: DARE's 1/d rescale (E[τ̂] = τ exactly; mergekit's L1 rescale matches
  each tensor's L1 norm instead, equal in expectation); ``rescale="none"``: no rescale.
- ``sign="unweighted"``: the TIES paper's election, γ = sgn Σ_k τ̂_k with agreement on
  sgn τ̂_k, the weights entering only the merge (differs from mergekit whenever weights are
  unequal, and whenever a weight is negative).
- ``trim="global"``: top-k over the whole model per expert (the TIES reference code) instead
  of per tensor (mergekit); the keep count follows the same rule over all entries.

Intended differences from mergekit, whatever the options: computation is float32 whatever
the models' dtype (mergekit computes in the config's ``dtype``); a top-k trim keeps every
entry tied with the k-th largest magnitude (mergekit's argsort keeps exactly k, in an
unspecified order among ties); DARE masks are ``u < d`` for uniforms u from generators keyed
by (seed, model, tensor name, block of ``DARE_BLOCK`` entries), so a (candidate, seed) always
gives the same mask and masks are nested in d (mergekit draws ``torch.bernoulli`` from the
global RNG); ``linear`` with weights summing to (nearly) 0 divides by 1, as mergekit's task
arithmetic does (mergekit's ``linear`` divides by 0). Tensors that are not floating point
(integer buffers) are copied from the base; results are cast back to each tensor's dtype.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from bbopt.options import OptionError, one_of
from bbopt.seeding import as_seed_sequence, child_seed, torch_generator

StateDict = Mapping[str, torch.Tensor]

#: mergekit's threshold above which SLERP falls back to linear interpolation
SLERP_LERP_THRESHOLD = 0.9995
#: mergekit's SLERP leaves a tensor of norm ≤ this unnormalised
SLERP_NORM_EPS = 1e-8
#: mergekit's DARE rescale is skipped when either L1 norm is below this
RESCALE_EPS = 1e-7
#: a (normalized) task-vector divisor below this in magnitude is replaced by 1 (mergekit)
DIVISOR_EPS = 1e-8
#: DARE uniforms are drawn per block of this many entries of a flattened tensor
DARE_BLOCK = 1 << 20
TRIM_SCOPES = ("tensor", "global")
RESCALES = ("l1", "density", "none")
SIGNS = ("weighted", "unweighted")


# --------------------------------------------------------------------- tensor primitives
def keep_count(density: float, n: int) -> int:
    """Entries of ``n`` a top-k trim at ``density`` keeps: all for d ≥ 1, none for d ≤ 0,
    else max(1, int(d·n)) (mergekit's rule)."""
    d = float(density)
    if d >= 1:
        return n
    if d <= 0 or n == 0:
        return 0
    return max(1, int(d * n))


def top_k_threshold(magnitudes: torch.Tensor, density: float) -> float:
    """The magnitude at or above which a top-k trim keeps entries; ``magnitudes``: (n,)."""
    n = magnitudes.numel()
    k = keep_count(density, n)
    if k >= n:
        return -float("inf")
    if k == 0:
        return float("inf")
    return float(torch.kthvalue(magnitudes.float(), n - k + 1).values)


def trim_mask(tau: torch.Tensor, density: float) -> torch.Tensor:
    """Boolean mask of the top ``density`` fraction of ``tau`` by magnitude (same shape)."""
    mags = tau.abs()
    return mags >= top_k_threshold(mags.reshape(-1), density)


def dare_uniforms(seed: Any, model: int, name: str, numel: int, start: int = 0,
                  stop: int | None = None) -> torch.Tensor:
    """U[0, 1) draws behind the DARE mask of entries [start, stop) of tensor ``name``
    (``numel`` entries, flattened) of expert ``model``: block b of ``DARE_BLOCK`` entries is
    drawn whole from a generator keyed by (seed, model, crc32(name), b), so any chunking of a
    tensor along block boundaries sees the same draws."""
    stop = numel if stop is None else stop
    seq, tag = as_seed_sequence(seed), zlib.crc32(name.encode())
    parts = []
    for block in range(start // DARE_BLOCK, -(-stop // DARE_BLOCK)):
        lo = block * DARE_BLOCK
        draws = torch.rand(min(DARE_BLOCK, numel - lo), generator=torch_generator(child_seed(seq, int(model), tag,
                                                                                               block)))
        parts.append(draws[max(start, lo) - lo: stop - lo])
    return torch.cat(parts) if len(parts) != 1 else parts[0]


def dare_mask(uniforms: torch.Tensor, density: Any) -> torch.Tensor:
    """Keep entries with ``u < d`` (Bernoulli(d) given u ~ U[0, 1)); ``density`` broadcasts."""
    return uniforms < torch.as_tensor(density, dtype=uniforms.dtype)


def rescale_factor(rescale: str, density: float, l1_before: float, l1_after: float) -> float:
    """What a DARE-masked task vector is multiplied by: mergekit's L1 match, 1/d, or 1."""
    if rescale == "l1":
        return 1.0 if l1_before < RESCALE_EPS or l1_after < RESCALE_EPS else l1_before / l1_after
    if rescale == "density":
        return 1.0 / density if density > 0 else 0.0
    return 1.0


def mix(taus: torch.Tensor, weights: torch.Tensor, consensus: str | None, normalize: bool) -> torch.Tensor:
    """The merged task vector (before λ) of ``taus`` (K, m) with ``weights`` broadcasting to them.

    ``consensus``: None (plain weighted sum), ``"weighted"`` (mergekit's sign election on
    w_k τ_k) or ``"unweighted"`` (the TIES paper's, on τ_k). ``normalize`` divides by the sum
    of the weights that entered (a zero divisor, or a plain sum below ``DIVISOR_EPS``, is 1).
    """
    weighted = taus * weights
    if consensus is None:
        mixed = weighted.sum(0)
        if normalize:
            divisor = weights.expand_as(taus).sum(0)
            mixed = mixed / torch.where(divisor.abs() < DIVISOR_EPS, 1.0, divisor)
        return mixed
    votes = weighted if consensus == "weighted" else taus
    majority = torch.where(votes.sum(0) >= 0, 1.0, -1.0)
    agree = torch.sign(votes) == majority
    mixed = (weighted * agree).sum(0)
    if normalize:
        divisor = (weights * agree).sum(0)
        mixed = mixed / torch.where(divisor == 0, 1.0, divisor)
    return mixed


def slerp_coefficients(t: float, dot: float, norm_a: float, norm_b: float) -> tuple[float, float]:
    """(c_a, c_b) with SLERP(a, b; t) = c_a·a + c_b·b, from ⟨a, b⟩ and the norms (mergekit's rule)."""
    scale = (norm_a if norm_a > SLERP_NORM_EPS else 1.0) * (norm_b if norm_b > SLERP_NORM_EPS else 1.0)
    cos = dot / scale
    if abs(cos) > SLERP_LERP_THRESHOLD:
        return 1.0 - t, t
    omega = float(np.arccos(cos))
    so = float(np.sin(omega))
    return float(np.sin((1 - t) * omega)) / so, float(np.sin(t * omega)) / so


def slerp_tensor(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of two same-shape tensors (float32); t = 0 gives ``a``."""
    a32, b32 = a.float(), b.float()
    ca, cb = slerp_coefficients(float(t), float((a32 * b32).sum()), float(a32.norm()), float(b32.norm()))
    return ca * a32 + cb * b32


def check_variant(method: str, owner: str, *, trim: str | None = None, rescale: str | None = None,
                  sign: str | None = None) -> None:
    """Each variant option only with the methods that use it (an unused option is an error)."""
    for name, value, allowed, users in (("trim", trim, TRIM_SCOPES, ("ties",)),
                                        ("rescale", rescale, RESCALES, ("dare_linear", "dare_ties")),
                                        ("sign", sign, SIGNS, ("ties", "dare_ties"))):
        if value is None:
            continue
        one_of(value, name, owner, allowed)
        if method not in users:
            raise OptionError(name, f"{owner}: {name} is not used by method {method!r} (only by "
                                    f"{', '.join(users)}); remove it")


# -------------------------------------------------------------------- state-dict level
def is_mergeable(t: torch.Tensor) -> bool:
    return torch.is_floating_point(t)


def task_vectors(base: StateDict, experts: Sequence[StateDict]) -> list[dict[str, torch.Tensor]]:
    """τ_k = θ_k − θ₀ for every floating-point tensor (float32)."""
    if not experts:
        raise ValueError("needs at least one expert")
    check_models(base, experts)
    return [{n: e[n].float() - base[n].float() for n in base if is_mergeable(base[n])} for e in experts]


def linear(models: Sequence[StateDict], weights: Sequence[float] | None = None,
           normalize: bool = True) -> dict[str, torch.Tensor]:
    """Weighted average (model soup) of K state dicts; uniform weights by default."""
    if not models:
        raise ValueError("linear: needs at least one model")
    check_models(models[0], models[1:])
    w = _column(_weights(weights, len(models), "linear"))
    out = {}
    for name, ref in models[0].items():
        if not is_mergeable(ref):
            out[name] = ref.clone()
            continue
        stack = torch.stack([m[name].float().reshape(-1) for m in models])
        out[name] = mix(stack, w, None, normalize).reshape(ref.shape).to(ref.dtype)
    return out


def task_arithmetic(base: StateDict, experts: Sequence[StateDict], lam: float = 1.0,
                    weights: Sequence[float] | None = None, normalize: bool = False) -> dict[str, torch.Tensor]:
    """θ₀ + λ Σ w_k τ_k (÷ Σ w_k with ``normalize``)."""
    w = _column(_weights(weights, len(experts), "task_arithmetic"))
    taus = task_vectors(base, experts)
    return _apply(base, {n: mix(_stack(taus, n), w, None, normalize) for n in taus[0]}, lam)


def ties(base: StateDict, experts: Sequence[StateDict], density: float | Sequence[float] = 0.2,
         lam: float = 1.0, weights: Sequence[float] | None = None, trim: str = "tensor",
         normalize: bool = True, sign: str = "weighted") -> dict[str, torch.Tensor]:
    """TIES-Merging: trim (per ``trim`` scope), elect sign (``sign``), disjoint mean (or sum)."""
    check_variant("ties", "ties", trim=trim, sign=sign)
    w = _column(_weights(weights, len(experts), "ties"))
    d = _densities(density, len(experts), "ties")
    taus = task_vectors(base, experts)
    if trim == "tensor":
        thresholds = [{n: top_k_threshold(t[n].abs().reshape(-1), d[k]) for n in t} for k, t in enumerate(taus)]
    else:
        whole = [top_k_threshold(torch.cat([v.abs().reshape(-1) for v in t.values()]), d[k])
                 for k, t in enumerate(taus)]
        thresholds = [dict.fromkeys(t, whole[k]) for k, t in enumerate(taus)]
    trimmed = [{n: v * (v.abs() >= thr[n]) for n, v in t.items()} for t, thr in zip(taus, thresholds)]
    return _apply(base, {n: mix(_stack(trimmed, n), w, sign, normalize) for n in trimmed[0]}, lam)


def dare(base: StateDict, experts: Sequence[StateDict], density: float | Sequence[float] = 0.5,
         lam: float = 1.0, weights: Sequence[float] | None = None, seed: Any = 0,
         combine: str = "linear", normalize: bool = False, rescale: str = "l1",
         sign: str | None = None) -> dict[str, torch.Tensor]:
    """DARE drop-and-rescale, then task arithmetic (``combine="linear"``) or TIES's sign
    election (``"ties"``, where ``sign`` chooses the election; default ``"weighted"``)."""
    one_of(combine, "combine", "dare", ("linear", "ties"))
    method = "dare_ties" if combine == "ties" else "dare_linear"
    check_variant(method, "dare", rescale=rescale, sign=sign)
    w = _column(_weights(weights, len(experts), "dare"))
    d = _densities(density, len(experts), "dare")
    taus = task_vectors(base, experts)
    sparse = []
    for k, tau in enumerate(taus):
        out = {}
        for n, v in tau.items():
            kept = v * dare_mask(dare_uniforms(seed, k, n, v.numel()), d[k]).reshape(v.shape)
            out[n] = kept * rescale_factor(rescale, d[k], float(v.abs().sum()), float(kept.abs().sum()))
        sparse.append(out)
    consensus = (sign or "weighted") if method == "dare_ties" else None
    return _apply(base, {n: mix(_stack(sparse, n), w, consensus, normalize) for n in sparse[0]}, lam)


def dare_ties(base: StateDict, experts: Sequence[StateDict], density: float | Sequence[float] = 0.5,
              lam: float = 1.0, weights: Sequence[float] | None = None, seed: Any = 0,
              normalize: bool = False, rescale: str = "l1", sign: str = "weighted") -> dict[str, torch.Tensor]:
    """DARE masks, then TIES sign election and disjoint sum (mergekit's ``dare_ties``)."""
    return dare(base, experts, density, lam, weights, seed, "ties", normalize, rescale, sign)


def slerp(a: StateDict, b: StateDict, t: float = 0.5) -> dict[str, torch.Tensor]:
    """Per-tensor SLERP from ``a`` (t = 0) to ``b`` (t = 1)."""
    check_models(a, [b])
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


def check_models(base: StateDict, others: Sequence[StateDict], labels: Sequence[str] | None = None) -> None:
    """Same tensor names and shapes as the base; the error names the first mismatch."""
    for i, m in enumerate(others):
        who = labels[i] if labels is not None else f"model {i}"
        missing, extra = [n for n in base if n not in m], [n for n in m if n not in base]
        if missing or extra:
            first = f"{missing[0]!r} is missing" if missing else f"{extra[0]!r} is not in the base"
            raise ValueError(f"{who} has different tensor names from the base: {first} "
                             f"({len(missing)} missing, {len(extra)} extra)")
        for n, t in base.items():
            if tuple(m[n].shape) != tuple(t.shape):
                raise ValueError(f"{who}: tensor {n!r} has shape {tuple(m[n].shape)}, the base has {tuple(t.shape)}")


# ------------------------------------------------------------------------- helpers
def _stack(taus: Sequence[Mapping[str, torch.Tensor]], name: str) -> torch.Tensor:
    return torch.stack([t[name].reshape(-1) for t in taus])


def _apply(base: StateDict, mixed: dict[str, torch.Tensor], lam: float) -> dict[str, torch.Tensor]:
    """θ₀ + λ·mixed for the merged tensors (mergekit scales after normalising), base elsewhere."""
    out = {}
    for n, t in base.items():
        if n not in mixed:
            out[n] = t.clone()
            continue
        delta = mixed[n] * lam if lam != 1 else mixed[n]
        out[n] = (t.float().reshape(-1) + delta).reshape(t.shape).to(t.dtype)
    return out


def _tensor_sum(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    """Σ terms in order, as built-in ``sum`` (adding a 0-dim zero first keeps the type a tensor)."""
    return sum(terms, torch.zeros(()))


def _column(w: np.ndarray) -> torch.Tensor:
    """Per-model weights (K,) as a (K, 1) float32 column that broadcasts over a tensor's entries."""
    return torch.as_tensor(w, dtype=torch.float32).reshape(-1, 1)


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
