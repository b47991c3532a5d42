"""What every bandit learner shares: sampling arms, remembering the probability each asked
arm had (importance weights), cost normalisation and non-finite costs, exact state.

Costs are ``y ≥ cost_offset`` (default 1: every solve takes at least one iteration; use 0
for wall-time costs); learners use the excess ``y − cost_offset``. A non-finite cost counts
as twice the worst excess seen so far; before any finite cost it cannot be scaled and is
counted in ``n_nonfinite_skipped`` instead of updating the learner.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from bbopt.batch import Batch
from bbopt.optimizer import Optimizer
from bbopt.options import OptionError, nonnegative
from bbopt.seeding import SeedLike
from bbopt.spaces import Choice, Space


class BanditOptimizer(Optimizer):
    """Subclasses implement ``_policy(context) -> (probs (d,), extra (d,) | None)`` and
    ``_update(arm, excess_cost, prob, context, extra)`` plus ``_learner_state`` / ``_load_learner_state``.

    ``extra`` is what the policy wants back with the played arm's cost (e.g. its prediction).
    """

    supported_spaces = (Choice,)
    handles_nonfinite = True
    owner: ClassVar[str] = "bandit"  # the registered name, for option errors

    def __init__(self, space: Space, seed: SeedLike = None, cost_offset: float = 1.0):
        super().__init__(space, seed)
        self.cost_offset = nonnegative(cost_offset, "cost_offset", self.owner)
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
            raise ValueError(f"{self.owner} needs a context: ask(context=c), or a problem with context(round)")
        try:
            c = float(np.asarray(context, dtype=float).reshape(()))
        except (TypeError, ValueError):
            raise TypeError(f"{self.owner}: context must be one number, got {context!r}") from None
        if not math.isfinite(c):
            raise ValueError(f"{self.owner}: context must be finite, got {c}")
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
            raise ValueError(f"{self.owner}: cost {y:g} is below cost_offset={self.cost_offset:g}; "
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


class ImportanceWeightedLearner(BanditOptimizer):
    """Learners on importance-weighted cumulative losses (Exp3, Tsallis-INF), one set per
    context bin (one bin unless a subclass bins the context).

    ``cumulative_losses[b, i]`` sums (y − offset)/p over the rounds arm i was played in bin b
    (an unbiased estimate of the arm's total excess cost). Learners see it divided by the
    bin's running mean excess cost (:meth:`normalised_losses`), so their learning rates do
    not depend on the unit of the cost (iterations, seconds).
    """

    def _init_bins(self, n_bins: int) -> None:
        self.cumulative_losses = np.zeros((n_bins, self.n_arms))
        self.rounds_played = np.zeros(n_bins, dtype=np.int64)  # costs learned from, per bin
        self.excess_sum = np.zeros(n_bins)  # Σ (y − offset) per bin

    def _bin(self, context: float) -> int:
        return 0

    def normalised_losses(self, b: int = 0) -> np.ndarray:
        """Cumulative losses ``(d,)`` of bin ``b`` over the bin's running mean excess cost (1 before any)."""
        n_seen, total = int(self.rounds_played[b]), float(self.excess_sum[b])
        scale = total / n_seen if n_seen > 0 and total > 0 else 1.0
        return self.cumulative_losses[b] / scale

    def _update(self, arm: int, excess: float, prob: float, context: float, extra: float) -> None:
        b = self._bin(context)
        self.cumulative_losses[b, arm] += excess / prob
        self.excess_sum[b] += excess
        self.rounds_played[b] += 1

    def _learner_state(self) -> dict:
        return {"cumulative_losses": self.cumulative_losses.copy(), "rounds_played": self.rounds_played.copy(),
                "excess_sum": self.excess_sum.copy()}

    def _load_learner_state(self, state: dict) -> None:
        self.cumulative_losses = np.array(state["cumulative_losses"], dtype=float)
        self.rounds_played = np.array(state["rounds_played"], dtype=np.int64)
        self.excess_sum = np.array(state["excess_sum"], dtype=float)


def context_range(value: Any, owner: str) -> tuple[float, float]:
    """``(low, high)`` with low < high, both finite; contexts outside are clipped to it."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise OptionError("context_range", f"{owner}: context_range must be a pair (low, high) of numbers, got "
                                           f"{value!r} (the problem's context_range attribute gives it)") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise OptionError("context_range", f"{owner}: context_range needs finite low < high, got {value!r}")
    return lo, hi
