"""What every ZO estimator shares: steps made of atomic candidate batches, guards, state, the log.

A step asks one batch of candidates (a MeZO ± pair, CGE's clean point and coordinates, ULR's
noisy copies); every candidate is one forward of that step's mini-batch, so the loop's budget is
a budget in FE, and ``atomic_batches`` keeps the loop from evaluating half a step. Losses are
buffered until the step's batch is fully told (in any order, in any subsets); then the
subclass's ``_complete`` forms the estimate and applies it through an update rule.

Guards: a non-finite loss skips the step's update (logged as ``skipped-nonfinite``, counted in
``n_skipped``); ``clip`` bounds each projected gradient |g| (seed-based) or the estimate's norm
(dense). Every step is logged in ``trajectory`` (seeds, g, lr, status).

``best`` is the lowest mini-batch loss among all candidates told and the spec that scored it: a
progress signal, not a model snapshot. The result of a ZO run is the model itself, trained in
place (``problem.model``; ``problem.save(path)`` writes it as safetensors).

State (``state_dict``): the selected parameters and masks, the seed generator, the open step, the
rule's state, the trajectory — a resumed run continues bit for bit.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch

from bbopt.optimizer import Optimizer
from bbopt.params import ModelParams
from bbopt.perturbations import Spec
from bbopt.seeding import SeedLike, child_seed, torch_generator
from bbopt.strategies.zo.rules import Estimate, RuleOptions, make_rule
from bbopt.strategies.zo.trajectory import Trajectory, replay

log = logging.getLogger("bbopt.zo")
SCHEDULES = ("constant", "cosine", "linear")


class ZOEstimator(Optimizer):
    """Base of the estimators over :class:`ModelParams` (see the module docstring)."""

    supported_spaces = (ModelParams,)
    handles_nonfinite = True
    atomic_batches = True
    #: FE one step costs (schedules run over budget // fe_per_step steps); set per instance
    fe_per_step: int = 1

    def __init__(self, space: ModelParams, seed: SeedLike = None, *, lr: float, weight_decay: float = 0.0,
                 clip: float | None = None, schedule: str = "constant", budget: int | None = None,
                 rule: str = "sgd", momentum: float = 0.9, window: int = 10, torch_optimizer: str = "adam",
                 torch_options: dict | None = None):
        super().__init__(space, seed)
        self.lr = _positive(lr, "lr")
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        self.clip = None if clip is None else _positive(clip, "clip")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if schedule != "constant" and budget is None:
            raise ValueError(f"schedule={schedule!r} needs budget= (in FE; minimize fills it in)")
        self.schedule, self.budget = schedule, budget
        self.rule_name = rule
        self._rule_options = RuleOptions(momentum=momentum, window=window, torch_optimizer=torch_optimizer,
                                         torch_options=torch_options, lr=self.lr, weight_decay=self.weight_decay)
        self.rule = make_rule(rule, space, **self._rule_options)
        self.gen = torch_generator(child_seed(self.seed, 1))
        self.step = 0
        self.n_skipped = 0
        self.trajectory = Trajectory()
        self._open: list[Spec] | None = None
        self._first_id = 0
        self._told: dict[int, float] = {}

    # ------------------------------------------------------------- schedule
    def lr_at(self, step: int) -> float:
        """Learning rate of ``step``: constant, or cosine / linear decay to 0 over the budget."""
        if self.schedule == "constant":
            return self.lr
        assert self.budget is not None, "__init__ requires a budget for a decaying schedule"
        total = max(1, int(self.budget) // self.fe_per_step)
        frac = min(1.0, step / total)
        if self.schedule == "linear":
            return self.lr * (1.0 - frac)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * frac))

    def new_seed(self) -> int:
        """A fresh 62-bit noise seed from this estimator's own torch.Generator."""
        return int(torch.randint(0, 1 << 62, (1,), generator=self.gen))

    # ------------------------------------------------------------ ask / tell
    def _ask(self, n: int | None, context: Any) -> list[Spec]:
        """The open step's candidates (``n`` is ignored: a step is one indivisible batch)."""
        if self._open is not None:
            raise RuntimeError(f"{type(self).__name__}: tell the losses of step {self.step} before asking again")
        self._open = self._candidates()
        self._first_id = self._next_id
        self._told = {}
        return list(self._open)

    def _tell(self, ids: np.ndarray, x: Any, losses: np.ndarray) -> None:
        if self._open is None:
            raise RuntimeError(f"{type(self).__name__}: no open step to tell")
        for i, spec, loss in zip(ids.tolist(), x, losses.tolist()):
            pos = int(i) - self._first_id
            self._told[pos] = float(loss)
            self._open[pos] = spec  # the told object: it may carry what its evaluation attached
        if len(self._told) == len(self._open):
            specs, values = self._open, np.array([self._told[k] for k in range(len(self._open))])
            self._open, self._told = None, {}
            self._complete(specs, values)

    def forget(self, batch: Any) -> None:
        """Drop asked candidates (the budget ended mid-step): the open step is abandoned."""
        super().forget(batch)
        self._open, self._told = None, {}

    def _candidates(self) -> list[Spec]:
        raise NotImplementedError

    def _complete(self, specs: list[Spec], values: np.ndarray) -> None:
        raise NotImplementedError

    # --------------------------------------------------------------- guards
    def guard_finite(self, values: np.ndarray) -> bool:
        """False (and the step logged as skipped) when a loss of the step is NaN/inf."""
        if np.isfinite(values).all():
            return True
        self.n_skipped += 1
        self.trajectory.record(self.step, "skipped-nonfinite", self.lr_at(self.step))
        log.info("%s step %d: non-finite loss %s, update skipped", type(self).__name__, self.step, values.tolist())
        return False

    def clip_g(self, g: np.ndarray) -> tuple[np.ndarray, bool]:
        """Projected gradients clipped to ±clip; returns (g, whether any was clipped)."""
        if self.clip is None:
            return g, False
        clipped = np.clip(g, -self.clip, self.clip)
        return clipped, bool((clipped != g).any())

    def clip_dense(self, grads: dict[int, torch.Tensor], norm: float) -> tuple[dict[int, torch.Tensor], bool]:
        """A dense estimate of norm ``norm`` scaled down to norm ``clip``; returns (grads, whether it was)."""
        if self.clip is None or not norm > self.clip:
            return grads, False
        return {i: g * (self.clip / norm) for i, g in grads.items()}, True

    def apply(self, estimate: Estimate) -> None:
        self.rule.step(estimate, self.lr_at(self.step), self.weight_decay)

    # ---------------------------------------------------------------- replay
    def reconstruct(self, space: ModelParams) -> int:
        """Replay this run's logged updates onto ``space`` (a model at the run's initial θ)."""
        rule = make_rule(self.rule_name, space, **self._rule_options)
        return replay(space, self.trajectory, rule, self.weight_decay)

    # ----------------------------------------------------------------- state
    def _algorithm_state(self) -> dict:
        return {"step": self.step, "n_skipped": self.n_skipped, "gen": self.gen.get_state(),
                "space": self.space.state_dict(), "rule": self.rule.state_dict(),
                "trajectory": self.trajectory.state_dict(),
                "open": None if self._open is None else [self.space.to_json(s) for s in self._open],
                "first_id": self._first_id, "told": {str(k): v for k, v in self._told.items()},
                "extra": self._extra_state()}

    def _load_algorithm_state(self, state: dict) -> None:
        self.step, self.n_skipped = int(state["step"]), int(state["n_skipped"])
        self.gen.set_state(torch.as_tensor(state["gen"], dtype=torch.uint8))
        self.space.load_state_dict(state["space"])
        self.rule = make_rule(self.rule_name, self.space, **self._rule_options)
        self.rule.load_state_dict(state["rule"])
        self.trajectory = Trajectory()
        self.trajectory.load_state_dict(state["trajectory"])
        self._open = None if state["open"] is None else [self.space.from_json(v) for v in state["open"]]
        self._first_id = int(state["first_id"])
        self._told = {int(k): float(v) for k, v in state["told"].items()}
        self._load_extra_state(state["extra"])

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, state: dict) -> None:
        pass


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _nonneg(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def check_int(value: Any, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)
