"""A merge recipe: which operator, and its coefficients for every (tensor, model).

A genome decodes a search vector into a :class:`Recipe`; :class:`bbopt.merge.TaskVectors`
applies it. Coefficients are stored per mergeable tensor (in ``TaskVectors.names`` order)
and per expert, so any granularity (global, per model, per layer group, per tensor filter)
is a way of filling these arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bbopt.merge.operators import check_variant
from bbopt.options import OptionError, one_of

METHODS = ("linear", "task_arithmetic", "ties", "dare_linear", "dare_ties", "slerp")
#: methods that read ``density``
SPARSIFYING = ("ties", "dare_linear", "dare_ties")
#: methods that add λ × a merged task vector to the base
TASK_VECTOR_METHODS = ("task_arithmetic", "ties", "dare_linear", "dare_ties")
#: methods that elect a sign per entry
CONSENSUS = ("ties", "dare_ties")
#: mergekit's defaults: linear and TIES divide by the weight sum, the others do not
DEFAULT_NORMALIZE = {"linear": True, "ties": True}


@dataclass
class Recipe:
    """``weight``: (n_tensors, K); ``density``: (n_tensors, K) for TIES/DARE; ``t``:
    (n_tensors,) for SLERP (from expert 0 at t = 0 to expert 1 at t = 1); ``lam`` scales
    the merged task vector (task-vector methods only). ``normalize``, ``trim`` (TIES),
    ``rescale`` (DARE) and ``sign`` (TIES, DARE-TIES): None means the method's default
    (mergekit's; see :mod:`bbopt.merge.operators`), and setting one the method does not use
    is an error."""

    method: str
    weight: np.ndarray
    density: np.ndarray | None = None
    t: np.ndarray | None = None
    lam: float = 1.0
    normalize: bool | None = None
    trim: str | None = None
    rescale: str | None = None
    sign: str | None = None

    def __post_init__(self) -> None:
        one_of(self.method, "method", "recipe", METHODS)
        check_variant(self.method, "recipe", trim=self.trim, rescale=self.rescale, sign=self.sign)
        if self.normalize is not None and self.method == "slerp":
            raise OptionError("normalize", "recipe: normalize is not used by method 'slerp'; remove it")
        if self.lam != 1 and self.method not in TASK_VECTOR_METHODS:
            raise OptionError("lambda", f"recipe: lambda is not used by method {self.method!r} (only by "
                                        f"{', '.join(TASK_VECTOR_METHODS)}); remove it")
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

    @property
    def trim_scope(self) -> str:
        return self.trim or "tensor"

    @property
    def rescale_rule(self) -> str:
        return self.rescale or "l1"

    @property
    def consensus(self) -> str | None:
        """The sign election of this method (None: no election)."""
        return (self.sign or "weighted") if self.method in CONSENSUS else None

    @classmethod
    def uniform(cls, method: str, n_tensors: int, n_models: int, weight: float = 1.0,
                density: float | None = None, t: float | None = None, **kw: object) -> Recipe:
        """The same coefficients everywhere (the baselines' recipes)."""
        shape = (n_tensors, n_models)
        return cls(method, np.full(shape, float(weight)),
                   None if density is None else np.full(shape, float(density)),
                   None if t is None else np.full(n_tensors, float(t)), **kw)  # type: ignore[arg-type]
