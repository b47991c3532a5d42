"""What every bandit learner shares: sampling arms, remembering the probability each asked
arm had (importance weights), cost normalisation and non-finite costs, exact state.

Costs are ``y ≥ cost_offset`` (default 1: every solve takes at least one iteration; use 0
for wall-time costs); learners use ``y − cost_offset``. A non-finite cost counts as twice
the worst excess seen so far; before any finite cost it cannot be scaled and is counted
in ``n_nonfinite_skipped`` instead of updating the learner.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bbopt.batch import Batch
from bbopt.optimizer import Optimizer
from bbopt.seeding import SeedLike
from bbopt.spaces import Choice, Space


class BanditOptimizer(Optimizer):
    """Subclasses implement ``_policy(context) -> (probs (d,), extra (d,) | None)`` and
    ``_update(arm, excess_cost, prob, context, extra)`` plus ``_learner_state`` / ``_load_learner_state``."""

    supported_spaces = (Choice,)
    handles_nonfinite = True

    def __init__(self, space: Space, seed: SeedLike = None, cost_offset: float = 1.0):
        super().__init__(space, seed)
        if isinstance(cost_offset, bool) or not isinstance(cost_offset, (int, float)) or not math.isfinite(cost_offset):
            raise ValueError(f"cost_offset must be a finite number (1 for iteration counts, 0 for times), got {cost_offset!r}")
        self.cost_offset = float(cost_offset)
        self.n_arms = int(self.space.n_arms)
        self._meta: dict[int, tuple[float, float, float]] = {}  # id -> (prob, context, extra)
        self._max_excess = -math.inf
        self.n_nonfinite_skipped = 0

    # ------------------------------------------------------------------ hooks
    def _policy(self, context: float) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def _update(self, arm: int, excess: float, prob: float, context: float, extra: float) -> None:
        raise NotImplementedError

    def _learner_state(self) -> dict:
        raise NotImplementedError

    def _load_learner_state(self, state: dict) -> None:
        raise NotImplementedError

    # -------------------------------------------------------------- ask / tell
    def _context(self, context: Any) -> float:
        """Contextual learners need a finite scalar context; the others ignore it (NaN)."""
        if not self.contextual:
            return math.nan
        if context is None:
            raise ValueError(f"{type(self).__name__} needs a context: ask(context=c), or a problem with context(round)")
        try:
            c = float(np.asarray(context, dtype=float).reshape(()))
        except (TypeError, ValueError):
            raise TypeError(f"{type(self).__name__}: context must be one number, got {context!r}") from None
        if not math.isfinite(c):
            raise ValueError(f"{type(self).__name__}: context must be finite, got {c}")
        return c

    def _ask(self, n: int | None, context: Any) -> np.ndarray:
        c = self._context(context)
        probs, extra = self._policy(c)
        arms = self.rng.choice(self.n_arms, size=n or 1, p=probs / probs.sum())
        for k, arm in enumerate(arms):  # the base numbers this batch from _next_id on
            e = math.nan if extra is None else float(extra[arm])
            self._meta[self._next_id + k] = (float(probs[arm]), c, e)
        return arms.astype(np.int64)

    def _tell(self, ids: np.ndarray, x: Any, losses: np.ndarray) -> None:
        for i, arm, y in zip(ids.tolist(), np.asarray(x).tolist(), losses.tolist()):
            prob, c, extra = self._meta.pop(int(i))
            excess = self._excess(float(y))
            if excess is not None:
                self._update(int(arm), excess, prob, c, extra)

    def forget(self, batch: Batch) -> None:
        super().forget(batch)
        for i in batch.ids.tolist():
            self._meta.pop(int(i), None)

    def _excess(self, y: float) -> float | None:
        if not math.isfinite(y):
            if not math.isfinite(self._max_excess):
                self.n_nonfinite_skipped += 1
                return None
            return 2.0 * self._max_excess
        excess = y - self.cost_offset
        if excess < 0:
            raise ValueError(f"{type(self).__name__}: cost {y:g} is below cost_offset={self.cost_offset:g}; "
                             "set cost_offset to a lower bound of the costs (0 for wall time)")
        self._max_excess = max(self._max_excess, excess)
        return excess

    # ------------------------------------------------------------------ state
    def _algorithm_state(self) -> dict:
        meta = np.array(list(self._meta.values()), dtype=float).reshape(-1, 3)
        return {
            "meta_ids": np.array(list(self._meta), dtype=np.int64), "meta": meta,
            "max_excess": self._max_excess, "n_nonfinite_skipped": self.n_nonfinite_skipped,
            "learner": self._learner_state(),
        }

    def _load_algorithm_state(self, state: dict) -> None:
        ids = np.asarray(state["meta_ids"], dtype=np.int64).tolist()
        rows = np.asarray(state["meta"], dtype=float).reshape(-1, 3).tolist()
        self._meta = {int(i): (r[0], r[1], r[2]) for i, r in zip(ids, rows)}
        self._max_excess = float(state["max_excess"])
        self.n_nonfinite_skipped = int(state["n_nonfinite_skipped"])
        self._load_learner_state(state["learner"])


def positive(value: Any, name: str, integer: bool = False) -> Any:
    """``value`` if it is a positive number (an int when ``integer``), else a ValueError naming it."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive {'integer' if integer else 'number'}, got {value!r}")
    return int(value) if integer else float(value)


def context_range(value: Any, owner: str) -> tuple[float, float]:
    """``(low, high)`` with low < high, both finite; contexts outside are clipped to it."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: context_range must be a pair (low, high) of numbers, got {value!r} "
                         "(the problem's context_range attribute gives it)") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{owner}: context_range needs finite low < high, got {value!r}")
    return lo, hi
