"""Which parameters of a torch module a :class:`~bbopt.params.ModelParams` space covers.

``select`` / ``exclude``: None (the parameters with ``requires_grad``: a peft model's adapters,
or whatever the user left trainable), ``"all"``, glob patterns on parameter names
(``"*.bias"``, ``"*lora_*"``, ``"encoder.layer.5.*"``) or a predicate ``f(name, param) -> bool``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence

import torch

Selector = None | str | Sequence[str] | Callable[[str, torch.nn.Parameter], bool]


def select_parameters(module: torch.nn.Module, select: Selector = None,
                      exclude: Selector = None) -> list[tuple[str, torch.nn.Parameter]]:
    """``[(name, parameter)]`` chosen by ``select`` and not by ``exclude`` (see the module docstring)."""
    named = list(module.named_parameters())
    chosen = [(n, p) for n, p in named if _matches(select, n, p, default=p.requires_grad)]
    chosen = [(n, p) for n, p in chosen if not _matches(exclude, n, p, default=False)]
    if not chosen:
        sample = ", ".join(n for n, _ in named[:8])
        raise ValueError(f"ModelParams: select={select!r} exclude={exclude!r} chose no parameters "
                         f"(names look like: {sample or 'the module has none'})")
    return chosen


def _matches(selector: Selector, name: str, p: torch.nn.Parameter, default: bool) -> bool:
    if selector is None:
        return default
    if selector == "all":
        return True
    if callable(selector):
        return bool(selector(name, p))
    patterns = [selector] if isinstance(selector, str) else list(selector)
    if not all(isinstance(s, str) for s in patterns):
        raise TypeError(f"ModelParams: select/exclude must be None, 'all', glob strings or a predicate, got {selector!r}")
    return any(fnmatch.fnmatchcase(name, s) for s in patterns)


def check_tensors(named: list[tuple[str, torch.nn.Parameter]]) -> None:
    device = named[0][1].device
    for name, p in named:
        if not p.is_floating_point():
            raise TypeError(f"ModelParams: parameter {name!r} is {p.dtype}, not floating point")
        if p.device != device:
            raise ValueError(f"ModelParams: parameters live on {device} and {p.device} ({name!r}); use one device")
        if not p.is_contiguous():
            raise ValueError(f"ModelParams: parameter {name!r} is not contiguous; make it contiguous first")
