"""K parameter copies of an ``nn.Sequential`` evaluated as one forward of K·B rows (no vmap).

The batched path for multi-direction steps (MeZO q > 1, FZOO's probes): the batch is replicated
copy-major (rows k·B … (k+1)·B − 1 belong to copy k) and the model runs child by child; a child
holding perturbed tensors applies copy k's tensors to copy k's rows (``Linear``: one ``baddbmm``;
``Conv1d``/``Conv2d``: one grouped convolution with the K weight copies as K groups), a child
holding none runs once on all K·B rows. (On CPU a small CNN gains little: its pooling and
convolutions cost as much per image in a batch of K·B as in a batch of B; see Z3.) The loss sees the replicated batch and must return
per-example values computed row by row (``(K·B,)``), which are averaged per copy. Anything else
(another child with perturbed tensors, a loss that calls the model twice or returns a scalar)
raises :class:`Unfoldable` and the caller falls back to ``vmap``.

Why: ``vmap`` over ``functional_call`` costs a fixed Python and decomposition overhead per call
(cross-entropy has no batching rule), which on the small models where batching pays is as large
as the forward itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F

from bbopt.problems.torch_data import n_rows, repeat_batch

FOLDABLE = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)


class Unfoldable(Exception):
    """This model, loss or set of perturbed tensors cannot be evaluated folded."""


class FoldedSequential:
    """Evaluates stacked parameter copies ``{name: (K, *shape)}`` of an ``nn.Sequential`` folded."""

    def __init__(self, model: torch.nn.Sequential):
        self.model = model
        self.children = list(model.named_children())
        self.enabled = True  # switched off by the caller after a refusal (e.g. a scalar loss)
        self._cache: tuple[Any, int, Any, set[int]] | None = None

    def losses(self, stacked: dict[str, torch.Tensor], loss: Callable, data: Any) -> torch.Tensor:
        """Per-copy mean losses ``(K,)``; raises :class:`Unfoldable`."""
        copies = next(iter(stacked.values())).shape[0]
        per_child: list[dict[str, torch.Tensor]] = [{} for _ in self.children]
        for name, value in stacked.items():
            m = next((m for m, (child, _) in enumerate(self.children) if name.startswith(child + ".")), None)
            local = None if m is None else name[len(self.children[m][0]) + 1:]
            if m is None or local not in ("weight", "bias") or not isinstance(self.children[m][1], FOLDABLE):
                raise Unfoldable(f"{name} is not the weight or bias of a Linear/Conv child")
            per_child[m][local] = value
        replicated, inputs = self._replicated(data, copies)
        calls: list[int] = []

        def run(x: torch.Tensor, *rest: Any, **kw: Any) -> torch.Tensor:
            if rest or kw or calls or id(x) not in inputs:
                raise Unfoldable("the loss must call the model once, on the batch's input tensor")
            calls.append(1)
            h = x
            for (_, child), params in zip(self.children, per_child):
                h = _forward(child, h, params, copies) if params else child(h)
            return h

        per_example = loss(ModelStandIn(self.model, run), replicated)
        rows = n_rows(data)
        if not isinstance(per_example, torch.Tensor) or per_example.shape != (copies * rows,):
            raise Unfoldable("the loss must return per-example values")
        return per_example.float().view(copies, rows).mean(1)

    def _replicated(self, data: Any, copies: int) -> tuple[Any, set[int]]:
        """The batch repeated ``copies`` times (kept while the same batch object comes back) and the
        ids of its tensors (the input the loss may call the model on)."""
        if self._cache is None or self._cache[0] is not data or self._cache[1] != copies:
            memo: dict = {}
            replicated = repeat_batch(data, copies, memo)
            self._cache = (data, copies, replicated, {id(t) for t in memo.values()})
        return self._cache[2], self._cache[3]


def _forward(child: torch.nn.Module, h: torch.Tensor, params: dict[str, torch.Tensor], copies: int) -> torch.Tensor:
    """``child`` with copy k's tensors on copy k's rows of ``h`` ``(K·B, ...)``."""
    own_w = cast(torch.Tensor, child.weight)  # a Linear / Conv child
    own_b = cast("torch.Tensor | None", getattr(child, "bias", None))
    weight = params.get("weight")
    bias = params.get("bias")
    weight = own_w.expand(copies, *own_w.shape) if weight is None else weight
    if bias is None and own_b is not None:
        bias = own_b.expand(copies, *own_b.shape)
    if isinstance(child, torch.nn.Linear):
        x = h.reshape(copies, -1, h.shape[-1])
        wt = weight.transpose(1, 2)
        y = torch.bmm(x, wt) if bias is None else torch.baddbmm(bias.unsqueeze(1), x, wt)
        return y.reshape(*h.shape[:-1], y.shape[-1])
    assert isinstance(child, (torch.nn.Conv1d, torch.nn.Conv2d))
    if child.padding_mode != "zeros":
        raise Unfoldable("only zero-padded convolutions fold")
    rows, channels, spatial = h.shape[0] // copies, h.shape[1], h.shape[2:]
    x = h.reshape(copies, rows, channels, *spatial).transpose(0, 1).reshape(rows, copies * channels, *spatial)
    w = weight.reshape(copies * weight.shape[1], *weight.shape[2:])
    conv = F.conv2d if isinstance(child, torch.nn.Conv2d) else F.conv1d
    padding: Any = child.padding
    y = conv(x, w, None if bias is None else bias.reshape(-1), child.stride, padding, child.dilation,
             child.groups * copies)
    out = y.reshape(rows, copies, weight.shape[1], *y.shape[2:]).transpose(0, 1)
    return out.reshape(copies * rows, weight.shape[1], *y.shape[2:])


class ModelStandIn:
    """A model stand-in whose call is ``run``; attribute access reaches the real module."""

    def __init__(self, module: torch.nn.Module, run: Callable):
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_run", run)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)
