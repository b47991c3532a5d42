"""Merging tensor by tensor, in place, from θ₀ and the experts' tensors in their own dtype.

:class:`TaskVectors` keeps references to the base θ₀ and the K experts θ_k of every mergeable
tensor — tensors of in-memory state dicts, or zero-copy views of memory-mapped safetensors
files (:func:`bbopt.merge.hf.open_safetensors`), in the experts' own dtype — and forms task
vectors τ_k = θ_k − θ₀ on the fly in float32 chunks of at most ``chunk`` entries. A merge
therefore holds no copy of τ: its transient memory is a few (K, chunk) float32 buffers, plus,
for TIES, one tensor's |τ_k| while its top-k threshold is found (the whole model's with
``trim="global"``). :meth:`TaskVectors.merge` writes each merged tensor straight into a
target tensor — a parameter of the model that is scored (:class:`MergedModel`). Pages of
memory-mapped files are read as needed and can be evicted; they are not anonymous memory.

Results match :mod:`bbopt.merge.operators` (tested with chunks smaller than the tensors);
DARE uniforms come from the same generators keyed by (seed, model, tensor name, block).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from bbopt.merge import operators as ops
from bbopt.merge.recipe import SPARSIFYING, Recipe
from bbopt.seeding import as_seed_sequence, child_seed

#: entries per merge chunk (= ``operators.DARE_BLOCK``: each DARE block is drawn once)
CHUNK = ops.DARE_BLOCK


class TaskVectors:
    """θ₀ and θ_k (k < K) of the mergeable tensors ``names`` (the base's order).

    ``exclude``: regular expressions; matching tensors are not merged (they keep the base
    values). Tensors sharing storage in the base (tied weights) are merged once.
    ``dare_seed``: the seed DARE masks are keyed by. ``chunk``: entries per pass (any size
    gives the same result; a multiple of ``operators.DARE_BLOCK`` draws each DARE block once).
    """

    def __init__(self, base: Mapping[str, torch.Tensor], experts: Sequence[Mapping[str, torch.Tensor]],
                 exclude: Sequence[str] = (), dare_seed: Any = 0, chunk: int = CHUNK,
                 expert_labels: Sequence[str] | None = None):
        if len(experts) < 1:
            raise ValueError("TaskVectors: needs at least one expert")
        ops.check_models(base, experts, expert_labels)
        patterns = [re.compile(p) for p in exclude]
        seen: set[int] = set()
        self.names: list[str] = []
        #: floating tensors ``exclude`` keeps at the base values
        self.excluded: list[str] = []
        for name, t in base.items():
            if not ops.is_mergeable(t):
                continue
            if any(p.search(name) for p in patterns):
                self.excluded.append(name)
                continue
            if t.numel() and t.data_ptr() in seen:
                continue
            seen.add(t.data_ptr())
            self.names.append(name)
        if not self.names:
            raise ValueError("TaskVectors: no floating-point tensors left to merge (check exclude=)")
        self.base, self.experts = base, list(experts)
        self.shapes = [tuple(base[n].shape) for n in self.names]
        self.sizes = np.array([base[n].numel() for n in self.names], dtype=np.int64)
        self.dare_seed = dare_seed
        self.chunk = int(chunk)

    @property
    def n_models(self) -> int:
        return len(self.experts)

    @property
    def n_params(self) -> int:
        return int(self.sizes.sum())

    def tau(self, k: int, name: str) -> torch.Tensor:
        """τ_k of tensor ``name`` in float32 (a new tensor, shaped like it)."""
        return self.experts[k][name].float() - self.base[name].float()

    # ------------------------------------------------------------------ merging
    def merge(self, recipe: Recipe, out: Mapping[str, torch.Tensor] | None = None,
              key: bytes | None = None) -> dict[str, torch.Tensor]:
        """The merged tensors, written into ``out[name]`` (contiguous; any float dtype) when given.

        ``key``: bytes that make DARE masks per candidate (None: the same masks for all).
        """
        self._check(recipe)
        target = {n: torch.empty(s) for n, s in zip(self.names, self.shapes)} if out is None else dict(out)
        seed = self.dare_seed if key is None else child_seed(as_seed_sequence(self.dare_seed), zlib.crc32(key),
                                                              len(key))
        global_thr = self._global_thresholds(recipe) if recipe.method == "ties" and recipe.trim_scope == "global" \
            else None
        with torch.no_grad():
            for j, name in enumerate(self.names):
                dst = target[name].view(-1)
                if recipe.method == "slerp":
                    self._slerp(name, float(recipe.t[j]), dst)  # type: ignore[index]
                elif recipe.method == "linear":
                    self._linear(recipe, j, name, dst)
                else:
                    thr = global_thr if global_thr is not None else self._thresholds(recipe, j, name)
                    self._task_vector_merge(recipe, j, name, dst, seed, thr)
        return target

    def _spans(self, n: int) -> Iterator[tuple[int, int]]:
        for a in range(0, n, self.chunk):
            yield a, min(n, a + self.chunk)

    def _rows(self, name: str, a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(θ₀[a:b], θ_k[a:b] for all k) in float32: shapes (m,), (K, m)."""
        flat = [e[name].reshape(-1)[a:b] for e in self.experts]
        return self.base[name].reshape(-1)[a:b].float(), torch.stack([f.float() for f in flat])

    def _linear(self, r: Recipe, j: int, name: str, dst: torch.Tensor) -> None:
        w = _column(r.weight[j])
        for a, b in self._spans(int(self.sizes[j])):
            dst[a:b] = ops.mix(self._rows(name, a, b)[1], w, None, r.normalized)

    def _sparse(self, r: Recipe, j: int, name: str, a: int, b: int, seed: Any,
                thr: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None]:
        """(θ₀[a:b], τ[:, a:b] after TIES's trim or DARE's mask (unscaled), Σ|τ_k[a:b]| (K,) when
        DARE's L1 rescale needs it, else None)."""
        base, theta = self._rows(name, a, b)
        taus = theta - base
        l1 = taus.abs().sum(1).double().numpy() if r.rescale_rule == "l1" and r.method in ("dare_linear",
                                                                                            "dare_ties") else None
        if r.method == "ties":
            assert thr is not None, "TIES merges always get thresholds"
            taus = taus * (taus.abs() >= torch.as_tensor(thr, dtype=torch.float32).reshape(-1, 1))
        elif r.method in ("dare_linear", "dare_ties"):
            assert r.density is not None, "Recipe requires density for DARE"
            n = int(self.sizes[j])
            u = torch.stack([ops.dare_uniforms(seed, k, name, n, a, b) for k in range(self.n_models)])
            taus = taus * ops.dare_mask(u, torch.as_tensor(r.density[j], dtype=torch.float32).reshape(-1, 1))
        return base, taus, l1

    def _task_vector_merge(self, r: Recipe, j: int, name: str, dst: torch.Tensor, seed: Any,
                           thr: np.ndarray | None) -> None:
        n = int(self.sizes[j])
        w = _column(r.weight[j])
        scale = None
        first = None  # a one-chunk tensor keeps its pass-1 result for pass 2
        if r.method in ("dare_linear", "dare_ties") and r.rescale_rule != "none":
            assert r.density is not None, "Recipe requires density for DARE"
            before, after = np.zeros(self.n_models), np.zeros(self.n_models)
            if r.rescale_rule == "l1":  # the L1 norms of whole tensors, before and after the mask
                for a, b in self._spans(n):
                    first = self._sparse(r, j, name, a, b, seed, thr)
                    assert first[2] is not None, "the L1 rescale gets L1 norms"
                    before += first[2]
                    after += first[1].abs().sum(1).double().numpy()
                first = first if n <= self.chunk else None
            scale = _column([ops.rescale_factor(r.rescale_rule, float(r.density[j, k]), before[k], after[k])
                             for k in range(self.n_models)])
        for a, b in self._spans(n):
            base, taus, _ = first if first is not None else self._sparse(r, j, name, a, b, seed, thr)
            if scale is not None:
                taus = taus * scale
            mixed = ops.mix(taus, w, r.consensus, r.normalized)
            dst[a:b] = base + (mixed * r.lam if r.lam != 1 else mixed)

    def _thresholds(self, r: Recipe, j: int, name: str) -> np.ndarray | None:
        """Per-model top-k |τ| thresholds of tensor ``j`` (TIES, per-tensor trim)."""
        if r.method != "ties":
            return None
        assert r.density is not None, "Recipe requires density for TIES"
        return np.array([ops.top_k_threshold(self.tau(k, name).abs().reshape(-1), float(r.density[j, k]))
                         for k in range(self.n_models)])

    def _global_thresholds(self, r: Recipe) -> np.ndarray:
        """Per-model top-k |τ| thresholds over the whole model (TIES, ``trim="global"``); the
        density is the first tensor's (a global trim has one density per model)."""
        assert r.density is not None, "Recipe requires density for TIES"
        if not np.allclose(r.density, r.density[:1]):
            raise ValueError("trim='global' needs one density per model (the same for every tensor)")
        out = []
        for k in range(self.n_models):
            mags = torch.cat([self.tau(k, n).abs().reshape(-1) for n in self.names])
            out.append(ops.top_k_threshold(mags, float(r.density[0, k])))
        return np.array(out)

    def _slerp(self, name: str, t: float, dst: torch.Tensor) -> None:
        dot = norm_a = norm_b = 0.0
        n = dst.numel()
        for a, b in self._spans(n):
            _, theta = self._rows(name, a, b)
            dot += float((theta[0] * theta[1]).sum())
            norm_a += float((theta[0] * theta[0]).sum())
            norm_b += float((theta[1] * theta[1]).sum())
        ca, cb = ops.slerp_coefficients(t, dot, norm_a ** 0.5, norm_b ** 0.5)
        for a, b in self._spans(n):
            _, theta = self._rows(name, a, b)
            dst[a:b] = ca * theta[0] + cb * theta[1]

    def _check(self, r: Recipe) -> None:
        if r.weight.shape != (len(self.names), self.n_models):
            raise ValueError(f"recipe has weight shape {r.weight.shape}, expected "
                             f"({len(self.names)}, {self.n_models}) (tensors, models)")
        if r.method in SPARSIFYING and r.density is None:
            raise ValueError(f"recipe: method {r.method!r} needs density")


class MergedModel:
    """The module merges are written into: ``targets`` maps each merged tensor's name to the
    module's own tensor, so a merge changes the module in place (the caller hands over a
    module of its own: a copy of the user's, or one it loaded). ``base``: the values
    :meth:`reset` restores after a full state dict was loaded for scoring."""

    def __init__(self, module: torch.nn.Module, tv: TaskVectors, base: Mapping[str, torch.Tensor]):
        self.module = module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.base = base
        state = self.module.state_dict()
        missing = [n for n in tv.names if n not in state]
        if missing:
            raise ValueError(f"the module has no tensor {missing[0]!r} (one of the merged tensors)")
        self.targets = {n: state[n] for n in tv.names}
        owner = {t.data_ptr(): n for n, t in self.targets.items() if t.numel()}
        #: tensors that share storage with a merged one (tied weights): name -> the merged name
        self.aliases = {n: owner[t.data_ptr()] for n, t in state.items()
                        if n not in self.targets and t.numel() and t.data_ptr() in owner}
        for n, t in self.targets.items():
            if not t.is_contiguous():
                raise ValueError(f"tensor {n!r} of the module is not contiguous; merges write into it in place")

    def load(self, tv: TaskVectors, recipe: Recipe, key: bytes | None = None) -> torch.nn.Module:
        """Merge ``recipe`` into the module in place and return it."""
        tv.merge(recipe, out=self.targets, key=key)
        return self.module

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        """Copy the tensors of ``state`` (any subset) into the module (in place)."""
        with torch.no_grad():
            for name, t in self.module.state_dict().items():
                if name in state:
                    t.copy_(state[name])
        return self.module

    def reset(self) -> None:
        """Restore the base values (merged tensors are rewritten by the next merge anyway)."""
        self.load_state_dict(self.base)


def _column(values: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float32)).reshape(-1, 1)
