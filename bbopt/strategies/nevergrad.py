"""Any nevergrad optimizer by name, behind bbopt's ask/tell.

nevergrad's "recast" optimizers (NGOpt's inner optimisers, SQP, Cobyla, Powell, ...) run
a callback-style loop in a non-daemon helper thread that can keep the interpreter alive
at exit (nevergrad #180, #325). The bridge stops every such thread just before Python
joins threads at shutdown, and :meth:`Nevergrad.close` stops them on demand.
Resume replays the ask/tell log, because recast optimizers cannot be pickled (#1355).
NGOpt's meta-model is not reproducible from a seed (#1572) and breaks on numpy ≥ 2.4
(#1612), which is why bbopt pins numpy < 2.4 and defaults to nevergrad's plain CMA.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import nevergrad as ng
import numpy as np

from bbopt.optimizer import Optimizer
from bbopt.options import OptionError, integer, point, positive, unknown_name_message
from bbopt.seeding import SeedLike, int_seed
from bbopt.spaces import Box

_LIVE: weakref.WeakSet = weakref.WeakSet()


class Nevergrad(Optimizer):
    """A nevergrad optimizer (``optimizer``: a name from ``ng.optimizers.registry``). Options:

    - ``budget``: passed to nevergrad (several optimizers plan with it; ``minimize`` fills
      it from the run budget).
    - ``popsize``: candidates that may be out at once (nevergrad's ``num_workers``) and the
      default batch of ``ask()`` (1).
    - ``x0``: the parametrization's initial value (default the box centre).
    """

    state_by_replay = True
    renamed_options = {"num_workers": "popsize"}

    def __init__(
        self,
        space: Box,
        seed: SeedLike = None,
        optimizer: str = "CMA",
        budget: int | None = None,
        popsize: int = 1,
        x0: Any = None,
    ):
        super().__init__(space, seed)
        if not isinstance(optimizer, str) or optimizer not in ng.optimizers.registry:
            raise OptionError("optimizer", unknown_name_message("nevergrad optimizer", str(optimizer),
                                                                ng.optimizers.registry))
        self.optimizer_name = optimizer
        self.budget = None if budget is None else positive(budget, "budget", "nevergrad", integer=True)
        self.popsize = integer(popsize, "popsize", "nevergrad", minimum=1, maximum=10**4)
        self.x0 = None if x0 is None else point(x0, "x0", "nevergrad", space)
        self._reset()
        _LIVE.add(self)

    def _reset(self) -> None:
        if getattr(self, "_ng", None) is not None:
            self.close()
        param = ng.p.Array(init=self.space.center if self.x0 is None else self.x0)
        if self.space.bounded and not self.space.soft:
            param.set_bounds(self.space.lower, self.space.upper)
        elif self.space.bounded:  # a soft box sets the scale of the search, not a constraint
            param.set_mutation(sigma=float(np.mean(self.space.width)) / 5)
        param.random_state = np.random.RandomState(int_seed(self.seed) % (2**32))
        self._ng = ng.optimizers.registry[self.optimizer_name](
            parametrization=param, budget=self.budget, num_workers=self.popsize
        )
        self._candidates: dict[int, Any] = {}

    def _ask(self, n: int | None, context: Any) -> np.ndarray:
        n = n or self.popsize
        out = np.empty((n, self.space.dim))
        for k in range(n):
            try:
                cand = self._ng.ask()
            except AssertionError as err:  # nevergrad asserts where a planner (NGOpt...) lacks its budget
                if self.budget is None:
                    raise ValueError(f"nevergrad: {self.optimizer_name!r} needs budget=N to start (it plans with "
                                     "it; minimize fills it from the run's budget)") from err
                raise
            self._candidates[self._next_id + k] = cand
            out[k] = cand.value
        return out

    def _tell(self, ids: np.ndarray, x: Any, losses: np.ndarray) -> None:
        for i, loss in zip(ids.tolist(), losses):
            self._ng.tell(self._candidates.pop(i), float(loss))

    def close(self) -> None:
        """Stop nevergrad helper threads held by this optimizer (idempotent)."""
        for thread in _messaging_threads(self._ng):
            thread.stop()


def _messaging_threads(root: Any) -> list:
    """MessagingThread objects reachable from a nevergrad optimizer (recast ones nest)."""
    found, stack, seen = [], [root], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        thread = getattr(obj, "_messaging_thread", None)
        if thread is not None:
            found.append(thread)
        attrs = getattr(obj, "__dict__", {})  # not getattr: NGOpt's ``optim`` property builds an optimizer
        for attr in ("_optim", "optims", "_optimizer"):
            child = attrs.get(attr)
            if isinstance(child, (list, tuple)):
                stack.extend(child)
            elif child is not None:
                stack.append(child)
    return found


def _stop_all() -> None:
    for opt in list(_LIVE):
        opt.close()


# Runs before the interpreter joins non-daemon threads (a plain atexit hook runs after).
_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_stop_all)
