"""Batched evaluation of K weight perturbations: one vmapped forward instead of K forwards.

The K perturbed copies of the selected tensors are stacked (``ModelParams.stacked``: K·P
memory, so this is for small models) and ``torch.func.vmap`` runs the user's loss over them
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

from bbopt.params import ModelParams
from bbopt.perturbations import Clean, Coordinate, Spec


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
    """Feature reuse for ``nn.Sequential`` models: cached child inputs, restart at the perturbed child."""

    def __init__(self, model: torch.nn.Sequential, space: ModelParams):
        self.model = model
        self.children = list(model.named_children())
        prefixes = [name + "." for name, _ in self.children]
        self.owner: list[int | None] = []
        for name in space.names:
            hit = [m for m, pre in enumerate(prefixes) if name.startswith(pre)]
            self.owner.append(hit[0] if hit else None)
        self._key: Any = None
        self._x: Any = None
        self._inputs: list[torch.Tensor] = []

    def record(self, key: Any, loss: Callable, data: Any) -> torch.Tensor:
        """The clean loss, caching each child's input (valid while ``key`` is unchanged)."""
        self._key, self._x, self._inputs = None, None, []

        def run(x: torch.Tensor, *rest: Any, **kw: Any) -> torch.Tensor:
            if rest or kw:
                return self.model(x, *rest, **kw)
            self._x, h = x, x
            for _, child in self.children:
                self._inputs.append(h)
                h = child(h)
            return h

        value = reduce_loss(loss(_CallableModel(self.model, run), data))
        self._key = key if len(self._inputs) == len(self.children) else None
        return value

    def valid(self, key: Any) -> bool:
        return self._key is not None and self._key == key

    def suffix_losses(self, m: int, loss: Callable, data: Any, stacked: dict[str, torch.Tensor]) -> torch.Tensor:
        """Losses of copies that differ only in child ``m``'s tensors (``stacked`` keys are full names)."""
        prefix = self.children[m][0] + "."
        child_params = {k[len(prefix):]: v for k, v in stacked.items()}

        def wrap(params: dict[str, torch.Tensor]) -> Any:
            def run(x: torch.Tensor, *rest: Any, **kw: Any) -> torch.Tensor:
                if rest or kw or x is not self._x:  # not the recorded call: a plain full forward
                    full = {prefix + k: v for k, v in params.items()}
                    return functional_call(self.model, full, (x, *rest), kw)
                h = functional_call(self.children[m][1], params, (self._inputs[m],))
                for _, child in self.children[m + 1:]:
                    h = child(h)
                return h
            return _CallableModel(self.model, run)

        return vmap_losses(self.model, loss, data, child_params, wrap)


class _CallableModel:
    """A model stand-in whose call is ``run``; attribute access reaches the real module."""

    def __init__(self, module: torch.nn.Module, run: Callable):
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_run", run)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def batched_values(space: ModelParams, loss: Callable, data: Any, specs: Sequence[Spec], max_copies: int,
                   reuse: SequentialReuse | None, key: Any) -> list[float]:
    """Losses of ``specs`` (clean, directions, coordinates) on ``data`` with vmapped forwards."""
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
        if owner is not None and not reuse.valid(key):
            reuse.record(key, loss, data)  # the clean forward ran elsewhere: rebuild the cache
        tensors = None if owner is None else [t for t, o in enumerate(reuse.owner) if o == owner]
        for start in range(0, len(idx), max_copies):
            part = idx[start:start + max_copies]
            stacked = space.stacked([specs[k] for k in part], tensors)
            if owner is None:
                values = vmap_losses(space.module, loss, data, stacked)
            else:
                values = reuse.suffix_losses(owner, loss, data, stacked)
            out.update(zip(part, values.tolist()))
    return [out[k] for k in range(len(specs))]
