"""The Problem protocol: what is minimised, evaluated a batch at a time.

A problem has a ``space`` and ``evaluate(batch) -> losses (n,)``. It may declare its
``optimum`` (the best loss, for targets and regret), ``max_batch`` (the largest batch one
call should take), ``state_dict``/``load_state_dict`` (for problems with state that a
checkpoint must carry), ``recommended_options(optimizer_name) -> dict`` (the options it is
built to be optimised with, e.g. the CMA-ES σ₀ its scaling assumes: a run applies them
unless the user sets them, and writes them into the resolved config; recommendations that do
not depend on the problem's arguments go in the class attribute ``recommended``, which
``bbopt list --problem NAME`` shows without building the problem) and optional capabilities
that strategies check for:
``context(round)`` (contextual strategies; the context of the instance a round solves),
``jvp`` (forward gradient), ``noisy_forward`` (likelihood ratio).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from bbopt.batch import Batch, candidates_of
from bbopt.spaces import Box, Choice, Space


class Problem:
    """Base class for problems (subclassing is optional: the protocol is duck-typed)."""

    space: Any  # a Space; concrete problems narrow it (Box, Choice, ModelParams)
    optimum: float | None = None
    max_batch: int | None = None
    #: True when evaluate() changes state the checkpoint carries (e.g. a warm start): then
    #: a resumed run re-evaluates instead of reusing evaluations recorded after the checkpoint
    evaluate_has_side_effects: bool = False

    def evaluate(self, batch: Batch | Any) -> np.ndarray:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Problems without state have nothing to restore."""

    #: strategy name -> options this problem is built to be optimised with, where they do not depend
    #: on its arguments (override :meth:`recommended_options` for those that do)
    recommended: ClassVar[dict[str, dict]] = {}

    def recommended_options(self, optimizer: str) -> dict:
        """Options for the strategy registered as ``optimizer`` that this problem is built for."""
        return copy.deepcopy(self.recommended.get(optimizer, {}))

    def describe(self) -> dict:
        return {"problem": type(self).__name__, "space": self.space.describe(), "optimum": self.optimum}


class FunctionProblem(Problem):
    """A plain callable as a Problem.

    ``vectorized=False``: ``f(x) -> float`` is called once per candidate (``x`` is a
    ``(d,)`` array on a Box, the arm's value on a Choice). ``vectorized=True``:
    ``f(X) -> (n,)`` gets the whole ``(n, d)`` batch at once.
    """

    def __init__(
        self,
        f: Callable[..., Any],
        space: Space,
        vectorized: bool = False,
        optimum: float | None = None,
        name: str | None = None,
    ):
        if not callable(f):
            raise TypeError(f"FunctionProblem: f must be callable, got {type(f).__name__}")
        if not isinstance(space, Space):
            raise TypeError("FunctionProblem: space must be a bbopt Space (e.g. Box(lower, upper))")
        self.f = f
        self.space = space
        self.vectorized = bool(vectorized)
        self.optimum = optimum
        self.name: str = name or getattr(f, "__name__", None) or type(f).__name__

    def evaluate(self, batch: Batch | Any) -> np.ndarray:
        x = self.space.validate(candidates_of(batch))
        if isinstance(self.space, Choice):
            x = [self.space.values[int(i)] for i in x]
        if self.vectorized:
            out = self.f(x)
        else:
            out = [_scalar(self.f(xi), self.name) for xi in x]
        return check_losses(out, len(x), self.name)

    def describe(self) -> dict:
        return {**super().describe(), "problem": self.name}


def as_problem(problem_or_f: Any, space: Space | None = None, vectorized: bool = False) -> Any:
    """A Problem as is; a callable wrapped with ``space`` (required then)."""
    if hasattr(problem_or_f, "evaluate") and hasattr(problem_or_f, "space"):
        if space is not None and space is not problem_or_f.space:
            raise ValueError("space= is only for plain callables; this problem has its own space")
        return problem_or_f
    if callable(problem_or_f):
        if space is None:
            raise ValueError("a plain callable needs space=, e.g. minimize(f, 'cma', 100, space=Box(-5, 5, dim=3))")
        return FunctionProblem(problem_or_f, space, vectorized=vectorized)
    raise TypeError(f"expected a Problem or a callable, got {type(problem_or_f).__name__}")


def check_losses(out: Any, n: int, name: str = "problem") -> np.ndarray:
    """Losses as a float array ``(n,)``, or a clear error for a wrong shape or type."""
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    try:
        values = np.asarray(out, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} returned {type(out).__name__}, expected numbers") from None
    if values.shape not in ((n,), (n, 1)):
        raise ValueError(f"{name} returned shape {values.shape}, expected ({n},): one loss per candidate")
    return values.reshape(n)


def _scalar(value: Any, name: str) -> float:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value) if value is not None else np.asarray(None)
    if arr.size != 1 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} returned {value!r}, expected one number per candidate")
    return float(arr.reshape(()))


__all__ = ["Box", "Choice", "FunctionProblem", "Problem", "as_problem", "check_losses"]
