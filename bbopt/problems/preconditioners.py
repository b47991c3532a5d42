"""Pick CG's preconditioner per system of a stream — a second solver parameter beyond SOR's ω
(the PCGBandit setting: Khodak, Jung, Wynne, Chow, Kolemen, arXiv 2509.08765, 2025).

Round t presents system A_t x = b_t of an i.i.d. stream (default: implicit diffusion steps
A = I + τ K, :class:`~bbopt.problems.linear_systems.ImplicitDiffusionStream`, context
log10 τ); the learner picks an arm of ``Choice(preconditioners)`` and the system is solved
by :func:`~bbopt.linsolve.precond.preconditioned_cg` to ``‖r‖/‖b‖ < tol``. Cost:

- ``"work"`` (default): iterations × (1 + the preconditioner's cost per application in
  fine-grid matvecs) — CG's own matvec plus M⁻¹r (Jacobi n/nnz, SSOR 2, AMG its cycle
  complexity). Deterministic. AMG's setup is not counted, so with ``"amg"`` among the arms
  it wins on nearly every system (6–8 V-cycles): it is offered but not a default arm;
- ``"iterations"``: CG iterations alone (AMG always wins: not a tuning problem);
- ``"time"``: wall seconds of setup + solve (learners need ``cost_offset=0``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bbopt.batch import Batch
from bbopt.linsolve.precond import PRECONDITIONERS, preconditioned_cg, preconditioner
from bbopt.linsolve.result import check_controls, check_omega
from bbopt.options import OptionError, one_of
from bbopt.problem import Problem
from bbopt.problems.linear_systems import ImplicitDiffusionStream, LinearSystem, as_stream
from bbopt.spaces import Choice

COSTS = ("work", "iterations", "time")


class PreconditionerProblem(Problem):
    """One evaluation = one system solved with one preconditioner; the loss is its cost."""

    space: Choice

    def __init__(self, stream: Any, preconditioners: tuple[str, ...] = ("none", "jacobi", "ssor"), cost: str = "work",
                 ssor_omega: float = 1.5, tol: float = 1e-8, maxiter: int = 10_000,
                 context_range: tuple[float, float] | None = None):
        names = list(preconditioners)
        bad = [p for p in names if p not in PRECONDITIONERS]
        if not names or bad or len(set(names)) != len(names):
            raise OptionError("preconditioners", f"preconditioners must be distinct names from {PRECONDITIONERS}, "
                                                 f"got {names!r}")
        self.cost = one_of(cost, "cost", "pcg-preconditioner", COSTS)
        self.ssor_omega = check_omega(ssor_omega)
        check_controls(tol, maxiter, 1e8)
        self.stream = as_stream(stream, context_range)
        if self.stream.stateful:
            raise OptionError("stream", "pcg-preconditioner needs an i.i.d. stream (instance t a function of t)")
        self.space = Choice(names)
        self.tol, self.maxiter = tol, maxiter
        self.context_range = self.stream.context_range if context_range is None else tuple(context_range)

    def context(self, t: int) -> float | None:
        return self.stream.context(t)

    def evaluate(self, batch: Any) -> np.ndarray:
        t = batch.round if isinstance(batch, Batch) else None
        if t is None:
            raise ValueError("PreconditionerProblem.evaluate needs a Batch with .round (the system to solve)")
        system = self.stream.instance(int(t))
        return np.array([self.solve(system, self.space.values[a]) for a in self.space.validate(batch.x).tolist()])

    def solve(self, system: LinearSystem, name: str) -> float:
        """The cost of solving ``system`` with preconditioner ``name``."""
        t0 = time.perf_counter()
        M = preconditioner(system.A, name, self.ssor_omega)
        res = preconditioned_cg(system.A, system.b, M, tol=self.tol, maxiter=self.maxiter)
        if self.cost == "time":
            return time.perf_counter() - t0
        return float(res.iterations) * (1.0 + M.apply_matvecs if self.cost == "work" else 1.0)

    def cost_table(self, rounds: Any) -> np.ndarray:
        """Costs ``(len(rounds), d)`` of every preconditioner on each listed system."""
        return np.array([[self.solve(self.stream.instance(int(t)), name) for name in self.space.values]
                         for t in rounds])

    def describe(self) -> dict:
        return {"problem": "PreconditionerProblem", "preconditioners": self.space.values, "cost": self.cost,
                "ssor_omega": self.ssor_omega, "tol": self.tol, **self.stream.describe()}


def implicit_diffusion_problem(m: int = 24, seed: int = 0, contrast: float = 100.0,
                               tau_range: tuple[float, float] = (1e-2, 1e3), **options: Any) -> PreconditionerProblem:
    """Implicit diffusion steps (:class:`ImplicitDiffusionStream`) + :class:`PreconditionerProblem` ``options``."""
    return PreconditionerProblem(ImplicitDiffusionStream(m, seed, contrast, tau_range), **options)
