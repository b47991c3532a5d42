"""Task vectors cached once, and merges written in place into a preallocated model.

θ₀ is flattened to ``theta0`` (P,) and the experts' task vectors τ_k = θ_k − θ₀ to
``tau`` (K, P), float32, over the mergeable (floating-point, not excluded) tensors. A
:class:`Recipe` is applied chunk by chunk over whole tensors with a few vectorised passes
over ``tau``, so one candidate costs O(K·P) and a bounded transient, whatever the number
of tensors. :class:`FlatModel` makes a copy of the base module whose mergeable tensors are
views into one flat buffer, so a merge writes straight into the model that is evaluated.
Results match :mod:`bbopt.merge.operators` (tested); DARE uniforms come from the same
generators keyed by (seed, model, tensor).
"""

from __future__ import annotations

import copy
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from bbopt.merge import operators as ops
from bbopt.merge.recipe import Recipe
from bbopt.seeding import as_seed_sequence, child_seed

#: elements per merge chunk (whole tensors; a larger tensor is a chunk of its own)
CHUNK = 1 << 22


class TaskVectors:
    """θ₀ (P,) and τ (K, P) over the mergeable tensors ``names`` (state-dict order).

    ``exclude``: regular expressions; matching tensors are not merged (they keep the base
    values). Tensors sharing storage in the base (tied weights) are merged once.
    ``dare_seed``: the seed DARE masks are keyed by.
    """

    def __init__(self, base: Mapping[str, torch.Tensor], experts: Sequence[Mapping[str, torch.Tensor]],
                 exclude: Sequence[str] = (), dare_seed: Any = 0):
        if len(experts) < 1:
            raise ValueError("TaskVectors: needs at least one expert")
        ops._check_models(base, experts)
        patterns = [re.compile(p) for p in exclude]
        seen: set[int] = set()
        self.names: list[str] = []
        for name, t in base.items():
            if not ops.is_mergeable(t) or any(p.search(name) for p in patterns):
                continue
            if t.numel() and t.data_ptr() in seen:
                continue
            seen.add(t.data_ptr())
            self.names.append(name)
        if not self.names:
            raise ValueError("TaskVectors: no floating-point tensors left to merge (check exclude=)")
        self.shapes = [tuple(base[n].shape) for n in self.names]
        self.sizes = np.array([base[n].numel() for n in self.names], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.theta0 = torch.cat([base[n].detach().float().reshape(-1) for n in self.names])
        self.tau = torch.stack([torch.cat([e[n].detach().float().reshape(-1) for n in self.names]) - self.theta0
                                for e in experts])
        self.dare_seed = dare_seed
        self._chunks = _chunks(self.sizes)
        self._sorted: dict[str, torch.Tensor] = {}
        self._uniforms: torch.Tensor | None = None

    @property
    def n_models(self) -> int:
        return int(self.tau.shape[0])

    @property
    def n_params(self) -> int:
        return int(self.theta0.numel())

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of ``flat`` (P,) shaped like the mergeable tensors."""
        return {n: flat[a:b].view(s) for n, a, b, s in zip(self.names, self.offsets[:-1], self.offsets[1:], self.shapes)}

    # ------------------------------------------------------------------ merging
    def merge(self, recipe: Recipe, out: torch.Tensor | None = None, key: bytes | None = None) -> torch.Tensor:
        """The merged flat parameters (P,), written into ``out`` when given.

        ``key``: bytes that make DARE masks per candidate (None: common masks for all).
        """
        self._check(recipe)
        out = torch.empty_like(self.theta0) if out is None else out
        if recipe.method == "slerp":
            return self._slerp(recipe, out)
        thresholds = self._thresholds(recipe) if recipe.method == "ties" else None
        for lo, hi in self._chunks:
            a, b = int(self.offsets[lo]), int(self.offsets[hi])
            torch.add(self.theta0[a:b], self._delta(recipe, lo, hi, a, b, thresholds, key), alpha=recipe.lam,
                      out=out[a:b])
        return out

    def _delta(self, r: Recipe, lo: int, hi: int, a: int, b: int, thr: np.ndarray | None,
               key: bytes | None) -> torch.Tensor:
        """The merged task vector of tensors [lo, hi) (elements [a, b)), before λ."""
        tau = self.tau[:, a:b]
        w = self._expand(r.weight[lo:hi], lo, hi)
        if r.method == "ties":
            assert thr is not None, "merge() passes thresholds for TIES"
            tau = tau * (tau.abs() >= self._expand(thr[lo:hi], lo, hi))
        elif r.method in ("dare_linear", "dare_ties"):
            assert r.density is not None, "Recipe requires density for DARE"
            d = self._expand(r.density[lo:hi], lo, hi)
            tau = ops.dare_rescale(tau, ops.dare_mask(self._dare_uniforms(lo, hi, a, b, key), d), d)
        if r.method in ("ties", "dare_ties"):
            return ops.disjoint_merge(tau, w, ops.elect_sign(tau, w), r.normalized)
        delta = (w * tau).sum(0)
        if r.normalized:
            total = w.sum(0)
            delta = torch.where(total != 0, delta / torch.where(total != 0, total, 1.0), 0.0)
        return delta

    def _expand(self, per_tensor: np.ndarray, lo: int, hi: int) -> torch.Tensor:
        """(n_chunk_tensors, K) per-tensor values -> (K, chunk elements)."""
        values = torch.as_tensor(np.ascontiguousarray(per_tensor.T), dtype=torch.float32)
        return torch.repeat_interleave(values, torch.as_tensor(self.sizes[lo:hi]), dim=1)

    def _thresholds(self, r: Recipe) -> np.ndarray:
        """Per (tensor, model) |τ| thresholds of the top-k trim: (n_tensors, K)."""
        assert r.density is not None, "Recipe requires density for TIES"
        srt = self._sorted_abs(r.trim)
        n = self.sizes[:, None] if r.trim == "tensor" else np.full((len(self.sizes), 1), self.n_params)
        end = self.offsets[1:, None] if r.trim == "tensor" else n
        k = np.rint(r.density * n).astype(np.int64)
        idx = np.clip(end - np.minimum(k, n), 0, self.n_params - 1)
        values = np.take_along_axis(srt.numpy(), idx.T, axis=1).T  # (n_tensors, K)
        return np.where(k > 0, values, np.inf)

    def _sorted_abs(self, scope: str) -> torch.Tensor:
        if scope not in self._sorted:
            mags = self.tau.abs()
            if scope == "global":
                self._sorted[scope] = torch.sort(mags, dim=1).values
            else:
                self._sorted[scope] = torch.cat([torch.sort(mags[:, a:b], dim=1).values
                                                 for a, b in zip(self.offsets[:-1], self.offsets[1:])], dim=1)
        return self._sorted[scope]

    def _dare_uniforms(self, lo: int, hi: int, a: int, b: int, key: bytes | None) -> torch.Tensor:
        if key is None:  # common random numbers: drawn once, kept
            if self._uniforms is None:
                self._uniforms = self._draw(0, len(self.sizes), self.dare_seed)
            return self._uniforms[:, a:b]
        seed = _keyed_seed(self.dare_seed, key)
        return self._draw(lo, hi, seed)

    def _draw(self, lo: int, hi: int, seed: Any) -> torch.Tensor:
        return torch.cat([torch.stack([ops.dare_uniforms(seed, k, j, (int(self.sizes[j]),))
                                       for k in range(self.n_models)]) for j in range(lo, hi)], dim=1)

    def _slerp(self, r: Recipe, out: torch.Tensor) -> torch.Tensor:
        assert r.t is not None, "Recipe requires t for SLERP"
        for j, (a, b) in enumerate(zip(self.offsets[:-1], self.offsets[1:])):
            x, y = self.theta0[a:b] + self.tau[0, a:b], self.theta0[a:b] + self.tau[1, a:b]
            out[a:b] = ops.slerp_tensor(x, y, float(r.t[j]))
        return out

    def _check(self, r: Recipe) -> None:
        if r.weight.shape != (len(self.names), self.n_models):
            raise ValueError(f"recipe has weight shape {r.weight.shape}, expected "
                             f"({len(self.names)}, {self.n_models}) (tensors, models)")


class FlatModel:
    """A deep copy of ``module`` whose tensors ``tv.names`` are views into ``self.flat`` (P,).

    ``base``: a state dict loaded first (the values of tensors that are never merged);
    ``rest`` keeps those values so :meth:`reset_rest` can restore them after a full state
    dict was loaded for scoring.
    """

    def __init__(self, module: torch.nn.Module, tv: TaskVectors, base: Mapping[str, torch.Tensor] | None = None):
        self.module = copy.deepcopy(module).eval()
        if base is not None:
            self.module.load_state_dict(dict(base), strict=False)
        self.flat = tv.theta0.clone()
        views = tv.unflatten(self.flat)
        for name, view in views.items():
            owner, _, attr = name.rpartition(".")
            sub = self.module.get_submodule(owner)
            param = sub._parameters.get(attr)  # None also for a parameter slot registered as None
            if param is not None:
                param.requires_grad_(False)
                param.data = view
            elif attr in sub._buffers:
                sub._buffers[attr] = view
            else:
                raise ValueError(f"FlatModel: {name!r} is not a parameter or buffer of the module")
        ptr = self.flat.untyped_storage().data_ptr()
        self.rest = {n: t.clone() for n, t in self.module.state_dict().items()
                     if t.untyped_storage().data_ptr() != ptr}

    def load(self, tv: TaskVectors, recipe: Recipe, key: bytes | None = None) -> torch.nn.Module:
        """Merge ``recipe`` into the module in place and return it."""
        tv.merge(recipe, out=self.flat, key=key)
        return self.module

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        """Copy a full state dict into the module (views stay views)."""
        with torch.no_grad():
            for name, t in self.module.state_dict().items():
                if name in state:
                    t.copy_(state[name])
        return self.module

    def reset_rest(self) -> None:
        """Restore the never-merged tensors to their base values."""
        self.load_state_dict(self.rest)


def _chunks(sizes: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive tensor ranges [lo, hi) of about CHUNK elements (a big tensor alone)."""
    out, lo, total = [], 0, 0
    for j, n in enumerate(sizes):
        if total and total + n > CHUNK:
            out.append((lo, j))
            lo, total = j, 0
        total += int(n)
    out.append((lo, len(sizes)))
    return out


def _keyed_seed(seed: Any, key: bytes) -> Any:
    return child_seed(as_seed_sequence(seed), zlib.crc32(key), len(key))
