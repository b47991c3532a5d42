"""A merge recipe: which operator, and its coefficients for every (tensor, model).

A genome decodes a search vector into a :class:`Recipe`; :class:`bbopt.merge.TaskVectors`
applies it. Coefficients are stored per mergeable tensor (in ``TaskVectors.names`` order)
and per expert, so any granularity (global, per model, per layer group, per tensor filter)
is a way of filling these arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bbopt.merge.operators import TRIM_SCOPES

METHODS = ("linear", "task_arithmetic", "ties", "dare_linear", "dare_ties", "slerp")
#: methods that read ``density``
SPARSIFYING = ("ties", "dare_linear", "dare_ties")
#: mergekit's defaults: linear and TIES divide by the weight sum, the others do not
DEFAULT_NORMALIZE = {"linear": True, "ties": True}


@dataclass
class Recipe:
    """``weight``: (n_tensors, K); ``density``: (n_tensors, K) for TIES/DARE; ``t``:
    (n_tensors,) for SLERP (from expert 0 at t = 0 to expert 1 at t = 1); ``lam`` scales
    the merged task vector; ``normalize`` None means the method's default."""

    method: str
    weight: np.ndarray
    density: np.ndarray | None = None
    t: np.ndarray | None = None
    lam: float = 1.0
    normalize: bool | None = None
    trim: str = "tensor"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"recipe: method must be one of {METHODS}, got {self.method!r}")
        if self.trim not in TRIM_SCOPES:
            raise ValueError(f"recipe: trim must be one of {TRIM_SCOPES}, got {self.trim!r}")
        self.weight = np.asarray(self.weight, dtype=float)
        if self.weight.ndim != 2:
            raise ValueError(f"recipe: weight must be (n_tensors, n_models), got shape {self.weight.shape}")
        if self.method in SPARSIFYING:
            if self.density is None:
                raise ValueError(f"recipe: method {self.method!r} needs density")
            self.density = np.clip(np.asarray(self.density, dtype=float), 0.0, 1.0)
            if self.density.shape != self.weight.shape:
                raise ValueError(f"recipe: density shape {self.density.shape} != weight shape {self.weight.shape}")
        if self.method == "slerp":
            if self.weight.shape[1] != 2:
                raise ValueError(f"recipe: slerp merges exactly 2 models, got {self.weight.shape[1]}")
            if self.t is None:
                raise ValueError("recipe: slerp needs t")
            self.t = np.asarray(self.t, dtype=float).reshape(-1)
            if self.t.size != self.weight.shape[0]:
                raise ValueError(f"recipe: t must have one value per tensor ({self.weight.shape[0]})")
        if not np.isfinite(self.weight).all() or not np.isfinite(self.lam):
            raise ValueError("recipe: weights and lambda must be finite")

    @property
    def normalized(self) -> bool:
        return DEFAULT_NORMALIZE.get(self.method, False) if self.normalize is None else bool(self.normalize)

    @classmethod
    def uniform(cls, method: str, n_tensors: int, n_models: int, weight: float = 1.0,
                density: float | None = None, t: float | None = None, **kw: object) -> Recipe:
        """The same coefficients everywhere (the baselines' recipes)."""
        shape = (n_tensors, n_models)
        return cls(method, np.full(shape, float(weight)),
                   None if density is None else np.full(shape, float(density)),
                   None if t is None else np.full(n_tensors, float(t)), **kw)  # type: ignore[arg-type]
