"""What every ZO estimator shares: steps made of atomic candidate batches, guards, state, the log.

A step asks one batch of candidates (a MeZO ± pair, CGE's clean point and coordinates, ULR's
noisy copies); every candidate is one forward of that step's mini-batch, so the loop's budget is
a budget in FE, and ``atomic_batches`` keeps the loop from evaluating half a step. Losses are
buffered until the step's batch is fully told (in any order, in any subsets); then the
subclass's ``_complete`` forms the estimate and applies it through an update rule
(:mod:`.rules`). After every complete step the module holds θ again (a perturbation the problem
left pending is undone by the update's own noise pass, or here).

Guards: a non-finite loss skips the step's update (logged as ``skipped-nonfinite``, counted in
``n_skipped``); ``clip`` bounds each projected gradient |g| (seed-based) or the estimate's norm
(dense). Every step is logged in ``trajectory`` (seeds, g, lr, status).

``best`` is the lowest mini-batch loss among all candidates told and the spec that scored it: a
progress signal, not a model snapshot. The result of a ZO run is the model itself, trained in
place (``problem.model``; ``problem.save(path)`` writes it as safetensors).

State (``state_dict``): the selected parameters and masks, the seed generator, the open step, the
rule's state, the trajectory — a resumed run continues bit for bit.

How a new estimator plugs in (the API ``fzoo``/``hizoo``/... build on; kept stable):

1. Subclass :class:`ZOEstimator` (or :class:`~bbopt.strategies.zo.mezo.SeedEstimator` when the
   estimate is Σ_j c_j·z(seed_j)); set the class attributes ``name`` (the registry name, used in
   error messages) and ``rules`` (the update rules it supports), and ``renamed_options`` if it
   renames any. In ``__init__`` check your own options with :mod:`bbopt.options` (owner
   ``self.name``), set ``self.fe_per_step`` (FE one step costs), then call
   ``super().__init__(space, seed, lr=..., rule=..., ...)`` passing the shared options through.
2. ``_candidates() -> list[Spec]``: the step's specs (:mod:`bbopt.perturbations`: ``Clean``,
   ``Direction(step, seed, scale, noise)`` ...), all with ``step=self.step``; draw seeds with
   :meth:`new_seed` (the estimator's own generator, part of its state).
3. ``_complete(specs, values)``: the step's specs and losses, in ask order. Check them with
   :meth:`guard_finite`; form the estimate (a ``SeedEstimate`` or ``DenseEstimate``), bound it
   with :meth:`clip_g` / :meth:`clip_dense`, apply it with :meth:`apply` (the chosen rule at
   ``lr_at(step)``), log it with ``self.trajectory.record(...)``, and ``self.step += 1``.
4. Extra state: ``_extra_state() -> dict`` / ``_load_extra_state(dict)`` (plain values and
   tensors). A per-parameter buffer (HiZOO's Σ) is +P memory: say so in the docstring.
5. Register it in ``bbopt.optimizer.OPTIMIZERS`` and give it a conformance test class
   (``bbopt.testing.OptimizerConformance``).

Evaluation is the problem's: a ``TorchProblem`` evaluates ``Direction`` specs in place (or batched
through vmap for small models: :func:`bbopt.params.stacked_copies`), so an estimator never
touches the weights except through its rule and ``self.space``.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import numpy as np
import torch

from bbopt.optimizer import Optimizer
from bbopt.options import OptionError, nonnegative, one_of, positive
from bbopt.params import ModelParams
from bbopt.perturbations import NOISE_KINDS, Spec
from bbopt.seeding import SeedLike, child_seed, torch_generator
from bbopt.strategies.zo.rules import RULES, Estimate, make_rule, rule_options
from bbopt.strategies.zo.trajectory import Trajectory, replay

log = logging.getLogger("bbopt.zo")
SCHEDULES = ("constant", "cosine", "linear")


class ZOEstimator(Optimizer):
    """Base of the estimators over :class:`ModelParams` (see the module docstring)."""

    supported_spaces = (ModelParams,)
    handles_nonfinite = True
    atomic_batches = True
    #: the registry name: error messages start with it (``mezo: eps must be ...``)
    name: ClassVar[str] = "zo"
    #: the update rules this estimator supports (:mod:`.rules`)
    rules: ClassVar[tuple[str, ...]] = RULES
    #: FE one step costs (schedules run over budget // fe_per_step steps); set per instance
    fe_per_step: int = 1

    def __init__(self, space: ModelParams, seed: SeedLike = None, *, lr: float, weight_decay: float = 0.0,
                 clip: float | None = None, schedule: str = "constant", budget: int | None = None,
                 rule: str = "sgd", momentum: float | None = None, window: int | None = None,
                 torch_optimizer: str | None = None, torch_options: dict | None = None):
        super().__init__(space, seed)
        owner = self.name
        self.lr = positive(lr, "lr", owner)
        self.weight_decay = nonnegative(weight_decay, "weight_decay", owner)
        self.clip = None if clip is None else positive(clip, "clip", owner)
        self.schedule = one_of(schedule, "schedule", owner, SCHEDULES)
        if schedule != "constant" and budget is None:
            raise OptionError("budget", f"{owner}: schedule={schedule!r} needs budget= (in FE; minimize fills it in)")
        self.budget = None if budget is None else positive(budget, "budget", owner, integer=True)
        self.rule_name = rule
        self._rule_options = rule_options(owner, rule, self.rules, momentum, window, torch_optimizer, torch_options)
        self.rule = self._make_rule(space)
        self.gen = torch_generator(child_seed(self.seed, 1))
        self.step = 0
        self.n_skipped = 0
        self.trajectory = Trajectory()
        self._open: list[Spec] | None = None
        self._first_id = 0
        self._told: dict[int, float] = {}

    def _make_rule(self, space: ModelParams) -> Any:
        return make_rule(self.rule_name, space, self._rule_options, self.lr, self.weight_decay, self.name)

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
            self.space.restore()  # θ again, also when the step made no update

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
        return replay(space, self.trajectory, self._make_rule(space), self.weight_decay)

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
        self.rule = self._make_rule(self.space)
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



def check_direction(value: Any, owner: str, allowed: tuple[str, ...] = NOISE_KINDS) -> str:
    """The ``direction`` option: the distribution of the random directions z."""
    return one_of(value, "direction", owner, allowed)
