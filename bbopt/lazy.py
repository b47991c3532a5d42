"""Lazily loaded module attributes: public names whose modules are heavy (torch) load on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(module: str, lazy: Mapping[str, str], namespace: dict) -> tuple[Callable[[str], Any],
                                                                                 Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``module``: ``lazy`` maps a name to the module that defines it,
    imported on first access; ``dir()`` shows the lazy names beside ``namespace``'s own."""

    def __getattr__(name: str) -> Any:
        source = lazy.get(name)
        if source is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        return getattr(importlib.import_module(source), name)

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(lazy))

    return __getattr__, __dir__
