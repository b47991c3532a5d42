"""Any optuna sampler by name, behind bbopt's ask/tell (Akiba et al., KDD 2019, arXiv:1907.10902).

The bridge drives an in-memory optuna study through its ask-and-tell interface: every
candidate is one trial asked with fixed distributions (one ``FloatDistribution`` per Box
coordinate, named ``x0 … x{d-1}``; one ``CategoricalDistribution`` over a Choice's arm
indices), so the sampler (TPE by default: Bergstra et al., NeurIPS 2011; ``GPSampler``,
``CmaEsSampler``, ``QMCSampler``, …) proposes it. Asks may run ahead of tells (those
trials stay RUNNING, as in optuna's own parallel optimisation) and tells come in any order.
A non-finite loss is told as a FAILED trial, which optuna's samplers leave out of their
models, rather than as a made-up penalty. The sampler is seeded from the strategy's seed;
resume rebuilds the study and replays the ask/tell log (a study holds timestamps and
sampler caches that are no plain state).
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np

from bbopt.optimizer import Optimizer
from bbopt.options import OptionError, check_options, integer, point, unknown_name_message, unused
from bbopt.seeding import SeedLike, int_seed
from bbopt.spaces import Box, Choice, Space

try:
    import optuna
except ImportError as err:  # an optional extra
    raise ImportError("the optuna bridge needs optuna: pip install 'bbopt[optuna]'") from err

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: samplers that need a search space or trials given up front: not for a bridge that asks freely
_NOT_SAMPLERS = {"BaseSampler", "BaseGASampler", "GridSampler", "PartialFixedSampler", "BruteForceSampler"}


def sampler_names() -> list[str]:
    """The optuna samplers the bridge accepts by name."""
    return sorted(name for name, obj in vars(optuna.samplers).items()
                  if isinstance(obj, type) and issubclass(obj, optuna.samplers.BaseSampler)
                  and name not in _NOT_SAMPLERS)


class Optuna(Optimizer):
    """Any optuna sampler by name, over a Box or a Choice. Options:

    - ``sampler``: a class name from ``optuna.samplers`` (``"TPESampler"``); further keyword
      options go to its constructor, e.g. ``n_startup_trials=10``, ``multivariate=True``.
    - ``popsize``: trials asked per ``ask()`` when no ``n`` is given (1); they stay running
      together, which samplers such as TPE (``constant_liar``) know how to handle.
    - ``x0``: a point of the Box enqueued as the first trial (Box spaces only).
    """

    supported_spaces = (Box, Choice)
    handles_nonfinite = True
    state_by_replay = True

    def __init__(self, space: Space, seed: SeedLike = None, sampler: str = "TPESampler", popsize: int = 1,
                 x0: Any = None, **sampler_options: Any):
        if isinstance(space, Box) and not space.bounded:
            raise ValueError("optuna: needs a Box with finite bounds (its distributions are intervals)")
        if x0 is not None and not isinstance(space, Box):
            raise unused("x0", "optuna", "on a Choice space (its candidates are arm indices)")
        names = sampler_names()
        if not isinstance(sampler, str) or sampler not in names:
            raise OptionError("sampler", unknown_name_message("optuna sampler", str(sampler), names))
        sampler_cls = getattr(optuna.samplers, sampler)
        check_options(sampler_cls, sampler_options, f"optuna sampler {sampler!r}")
        super().__init__(space, seed)
        self.sampler_name, self.sampler_cls, self.sampler_options = sampler, sampler_cls, dict(sampler_options)
        self.popsize = integer(popsize, "popsize", "optuna", minimum=1, maximum=10**4)
        self.x0 = None if x0 is None else point(x0, "x0", "optuna", space)
        if isinstance(space, Box):
            self._distributions: dict[str, Any] = {
                f"x{i}": optuna.distributions.FloatDistribution(float(lo), float(hi))
                for i, (lo, hi) in enumerate(zip(space.lower, space.upper))}
        elif isinstance(space, Choice):
            self._distributions = {"arm": optuna.distributions.CategoricalDistribution(list(range(space.n_arms)))}
        self._reset()

    def _reset(self) -> None:
        options = dict(self.sampler_options)
        if "seed" in inspect.signature(self.sampler_cls).parameters:
            options["seed"] = int_seed(self.seed) % (2**32)
        with warnings.catch_warnings():  # GPSampler & co. are "experimental" in optuna's terms
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                sampler = self.sampler_cls(**options)
            except (TypeError, ValueError) as err:
                raise OptionError("sampler", f"optuna: {self.sampler_name}({options}) failed: {err}") from None
        self._study = optuna.create_study(sampler=sampler, direction="minimize")
        if self.x0 is not None:
            self._study.enqueue_trial({name: float(v) for name, v in zip(self._distributions, self.x0)})
        self._trials: dict[int, Any] = {}

    def _ask(self, n: int | None, context: Any) -> np.ndarray:
        n = n or self.popsize
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            trials = [self._study.ask(self._distributions) for _ in range(n)]
        for k, trial in enumerate(trials):
            self._trials[self._next_id + k] = trial
        if isinstance(self.space, Choice):
            return np.array([t.params["arm"] for t in trials], dtype=np.int64)
        return np.array([[t.params[name] for name in self._distributions] for t in trials], dtype=float)

    def _tell(self, ids: np.ndarray, x: Any, losses: np.ndarray) -> None:
        for i, loss in zip(ids.tolist(), losses.tolist()):
            trial = self._trials.pop(i)
            if np.isfinite(loss):
                self._study.tell(trial, loss)
            else:
                self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
