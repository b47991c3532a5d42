"""Batched evaluation of K weight perturbations: one batched forward instead of K forwards.

The K perturbed copies of the selected tensors are stacked (:func:`~bbopt.params.stacked_copies`:
K·P memory, so this is for small models); an ``nn.Sequential`` runs them folded into one forward
of K·B rows (:mod:`.torch_folded`), anything else through ``torch.func.vmap`` of the user's loss
through :class:`FunctionalModel` (``torch.func.functional_call``). For an ``nn.Sequential``
model, coordinate perturbations also get DeepZero's *feature reuse*: the clean forward records
each child's input, and a copy that perturbs child m restarts there, vmapped over the stacked
copies of child m's tensors only, so a late-layer coordinate costs a fraction of a forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.func import functional_call, vmap

from bbopt.params import ModelParams, stacked_copies
from bbopt.perturbations import Clean, Coordinate, Spec
from bbopt.problems.torch_data import repeat_batch
from bbopt.problems.torch_folded import FoldedSequential, ModelStandIn, Unfoldable


class FunctionalModel:
    """``module`` called with some parameters replaced; other attributes pass through."""

    def __init__(self, module: torch.nn.Module, params: dict[str, torch.Tensor]):
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_params", params)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return functional_call(self._module, self._params, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def math_attention() -> Any:
    """Scaled-dot-product attention composed of plain ops, which vmap and forward-mode AD support
    (the fused CPU kernel has neither a batching rule nor a forward derivative)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])


def reduce_loss(out: Any) -> torch.Tensor:
    """A scalar from a loss that returned a scalar or per-example values ``(B,)``."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"TorchProblem: loss must return a tensor (scalar or per-example), got {type(out).__name__}")
    return out.float().mean() if out.dim() else out.float()


def vmap_losses(module: torch.nn.Module, loss: Callable, data: Any, stacked: dict[str, torch.Tensor],
                wrap: Callable[[dict], Any] | None = None) -> torch.Tensor:
    """Losses ``(K,)`` of the K stacked parameter copies, in one vmapped call."""
    wrap = wrap or (lambda params: FunctionalModel(module, params))

    def one(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return reduce_loss(loss(wrap(params), data))

    with math_attention():
        return vmap(one)(stacked)


class SequentialReuse:
    """Feature reuse for ``nn.Sequential`` models: cached child inputs, restart at the perturbed child.

    A coordinate of a ``Linear`` child changes its output by a rank-one term (W + μe_ieⱼᵀ)x = Wx + μxⱼeᵢ,
    so the child's output is the cached clean output plus that term; other children are re-run on
    their cached input with the stacked perturbed copies of their tensors.
    """

    def __init__(self, model: torch.nn.Sequential, space: ModelParams):
        self.model, self.space = model, space
        self.children = list(model.named_children())
        prefixes = [name + "." for name, _ in self.children]
        self.owner: list[int | None] = []
        self.local: list[str] = []
        for name in space.names:
            hit = [m for m, pre in enumerate(prefixes) if name.startswith(pre)]
            self.owner.append(hit[0] if hit else None)
            self.local.append(name[len(prefixes[hit[0]]):] if hit else name)
        self._key: Any = None
        self._x: Any = None
        self._acts: list[torch.Tensor] = []  # input of child m at m; the model's output last

    def record(self, key: Any, loss: Callable, data: Any) -> torch.Tensor:
        """The clean loss, caching each child's input (valid while ``key`` is unchanged)."""
        self._key, self._x, self._acts = None, None, []

        def run(x: torch.Tensor, *rest: Any, **kw: Any) -> torch.Tensor:
            if rest or kw:
                return self.model(x, *rest, **kw)
            self._x, h = x, x
            for _, child in self.children:
                self._acts.append(h)
                h = child(h)
            self._acts.append(h)
            return h

        value = reduce_loss(loss(ModelStandIn(self.model, run), data))
        self._key = key if len(self._acts) == len(self.children) + 1 else None
        return value

    def valid(self, key: Any) -> bool:
        return self._key is not None and self._key == key

    def coordinate_losses(self, m: int, specs: Sequence[Coordinate], loss: Callable, data: Any) -> torch.Tensor:
        """Losses ``(K,)`` of coordinate perturbations owned by child ``m``: its K outputs, then the suffix."""
        child = self.children[m][1]
        if isinstance(child, torch.nn.Linear):
            outputs = self._rank_one(m, specs)
        else:
            prefix = self.children[m][0] + "."
            tensors = [t for t, o in enumerate(self.owner) if o == m]
            stacked = {k[len(prefix):]: v for k, v in stacked_copies(self.space, specs, tensors).items()}
            outputs = vmap(lambda p: functional_call(child, p, (self._acts[m],)))(stacked)

        folded = self._folded_losses(m, outputs, loss, data)
        if folded is not None:
            return folded
        with math_attention():
            return vmap(lambda h: self._suffix_loss(m, h, loss, data))(outputs)

    def _folded_losses(self, m: int, outputs: torch.Tensor, loss: Callable, data: Any) -> torch.Tensor | None:
        """All K copies as one batch of K·B rows through the rest of the model (per-example losses only)."""
        copies, rows = outputs.shape[0], outputs.shape[1]
        memo: dict = {}
        replicated = repeat_batch(data, copies, memo)
        h = outputs.reshape(copies * rows, *outputs.shape[2:])
        per_example = loss(self._suffix_model(m, h, memo.get(id(self._x))), replicated)
        if not isinstance(per_example, torch.Tensor) or per_example.shape != (copies * rows,):
            return None  # a scalar loss: the caller vmaps over the copies instead
        return per_example.float().view(copies, rows).mean(1)

    def _suffix_loss(self, m: int, h: torch.Tensor, loss: Callable, data: Any) -> torch.Tensor:
        return reduce_loss(loss(self._suffix_model(m, h, self._x), data))

    def _suffix_model(self, m: int, h: torch.Tensor, expected: Any) -> Any:
        """A model stand-in that, called on ``expected``, runs children m+1… on ``h``."""
        def run(x: torch.Tensor, *rest: Any, **kw: Any) -> torch.Tensor:
            if rest or kw or x is not expected:
                raise RuntimeError("feature reuse: the loss called the model with another input than the "
                                   "clean forward did")
            out = h
            for _, later in self.children[m + 1:]:
                out = later(out)
            return out
        return ModelStandIn(self.model, run)

    def _rank_one(self, m: int, specs: Sequence[Coordinate]) -> torch.Tensor:
        """``(K, *out)``: the clean output of Linear child ``m`` plus each coordinate's rank-one change."""
        x, y = self._acts[m], self._acts[m + 1]
        copies = len(specs)
        out = y.unsqueeze(0).repeat(copies, *([1] * y.dim()))
        index = torch.tensor([s.index for s in specs], device=y.device)
        scale = torch.tensor([s.scale for s in specs], dtype=y.dtype, device=y.device)
        weight = torch.tensor([self.local[s.tensor] == "weight" for s in specs], device=y.device)
        k = torch.arange(copies, device=y.device)
        by_unit = out.movedim(-1, 1)  # (K, out, ...): a view, so writes land in ``out``
        shape = (-1,) + (1,) * (x.dim() - 1)
        rows, cols = torch.div(index[weight], x.shape[-1], rounding_mode="floor"), index[weight] % x.shape[-1]
        by_unit[k[weight], rows] += scale[weight].view(shape) * x.movedim(-1, 0)[cols]
        by_unit[k[~weight], index[~weight]] += scale[~weight].view(shape)
        return out


def batched_values(space: ModelParams, loss: Callable, data: Any, specs: Sequence[Spec], max_copies: int,
                   reuse: SequentialReuse | None, key: Any, folded: FoldedSequential | None = None) -> list[float]:
    """Losses of ``specs`` (clean, directions, coordinates) on ``data`` with batched forwards: folded
    into one K·B-row forward when ``folded`` can (it is disabled after its first refusal), else vmapped."""
    out: dict[int, float] = {}
    groups: dict[Any, list[int]] = {}
    for k, spec in enumerate(specs):
        if isinstance(spec, Clean):
            value = reuse.record(key, loss, data) if reuse is not None else reduce_loss(loss(space.module, data))
            out[k] = float(value)
        else:
            owner = reuse.owner[spec.tensor] if (reuse is not None and isinstance(spec, Coordinate)) else None
            groups.setdefault(owner, []).append(k)
    for owner, idx in groups.items():
        chunks = [idx[start:start + max_copies] for start in range(0, len(idx), max_copies)]
        if owner is None:
            for chunk in chunks:
                stacked = stacked_copies(space, [specs[k] for k in chunk])
                values = None
                if folded is not None and folded.enabled:
                    try:
                        values = folded.losses(stacked, loss, data)
                    except Unfoldable:
                        folded.enabled = False
                if values is None:
                    values = vmap_losses(space.module, loss, data, stacked)
                out.update(zip(chunk, values.tolist()))
            continue
        assert reuse is not None, "only feature reuse gives a candidate an owner"
        if not reuse.valid(key):
            reuse.record(key, loss, data)  # the clean forward ran elsewhere: rebuild the cache
        for chunk in chunks:
            coords = [spec for k in chunk if isinstance(spec := specs[k], Coordinate)]  # all of them: owned
            out.update(zip(chunk, reuse.coordinate_losses(owner, coords, loss, data).tolist()))
    return [out[k] for k in range(len(specs))]
