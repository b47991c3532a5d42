"""Merge baselines in the same API, each with the number of fitness evaluations it spent.

Every baseline selects on the fitness split and reports the test split, like the search:
uniform soup (1 evaluation), task arithmetic at λ = 1 (1) and over a λ grid (21 points on
[0, 2]), TIES at the paper's defaults (density 0.2, λ = 1) and over a small grid, DARE
(density 0.1, i.e. p = 0.9) and a small grid, Fisher merging (1; Fishers from each
expert's own data), and random search / any optimizer over the problem's own genome space
at a given budget. Grids are evaluated through ``MergeProblem.with_genome`` so every number
comes from the same merge code and the same scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bbopt.merge import operators as ops
from bbopt.merge.fisher import diagonal_fisher
from bbopt.merge.fitness import Task, loss_of

TA_GRID = tuple(np.round(np.linspace(0.0, 2.0, 21), 10))
TIES_GRID = {"density": (0.1, 0.2, 0.5, 1.0), "lambda": (0.5, 0.8, 1.1, 1.4, 1.7, 2.0)}
DARE_GRID = {"density": (0.1, 0.3, 0.5), "lambda": (0.3, 0.5, 0.7, 1.0)}


@dataclass
class BaselineResult:
    """One row of a comparison: fitness evaluations spent, the chosen point, its scores."""

    name: str
    n_evals: int
    loss: float
    x: Any
    fitness: dict
    test: dict | None
    #: the genome ``x`` is a point of (None: ``x`` is None, e.g. Fisher merging)
    genome: Any = None

    def row(self) -> dict:
        test = self.test or {}
        return {"name": self.name, "n_evals": self.n_evals, "loss": self.loss,
                "fitness_accuracy": self.fitness["accuracy"], "test_accuracy": test.get("accuracy"),
                "test_ce": test.get("ce")}


def grid(problem: Any, genome: Any, points: Sequence[Sequence[float] | np.ndarray], name: str) -> BaselineResult:
    """Evaluate ``points`` of ``genome`` on the fitness split; keep the best."""
    p = problem.with_genome(genome)
    X = np.asarray(points, dtype=float)
    losses = p.evaluate(X)
    best = int(np.nanargmin(np.where(np.isfinite(losses), losses, np.nan)))
    rep = p.report(X[best])
    return BaselineResult(name, len(X), float(losses[best]), X[best].tolist(), rep["fitness"], rep["test"], genome)


def uniform_soup(problem: Any) -> BaselineResult:
    return grid(problem, "soup", [np.ones(problem.tv.n_models)], "uniform soup")


def task_arithmetic(problem: Any, lam: float = 1.0) -> BaselineResult:
    return grid(problem, "global", [[lam]], f"task arithmetic λ={lam:g}")


def task_arithmetic_grid(problem: Any, lams: Sequence[float] = TA_GRID) -> BaselineResult:
    return grid(problem, "global", [[v] for v in lams], f"task arithmetic, {len(lams)}-point λ grid")


def ties(problem: Any, density: float = 0.2, lam: float = 1.0, trim: str = "tensor") -> BaselineResult:
    return grid(problem, {"preset": "ties", "trim": trim}, [[density, lam]], f"TIES d={density:g} λ={lam:g}")


def ties_grid(problem: Any, axes: dict = TIES_GRID, trim: str = "tensor") -> BaselineResult:
    pts = [[d, lam] for d in axes["density"] for lam in axes["lambda"]]
    return grid(problem, {"preset": "ties", "trim": trim}, pts, f"TIES grid ({len(pts)})")


def dare(problem: Any, density: float = 0.1, lam: float = 1.0) -> BaselineResult:
    return grid(problem, "dare", [[density, lam]], f"DARE d={density:g} λ={lam:g}")


def dare_grid(problem: Any, axes: dict = DARE_GRID) -> BaselineResult:
    pts = [[d, lam] for d in axes["density"] for lam in axes["lambda"]]
    return grid(problem, "dare", pts, f"DARE grid ({len(pts)})")


def fisher(problem: Any, expert_data: Sequence[Sequence[Task]] | None = None, n_examples: int = 256,
           empirical: bool = True) -> BaselineResult:
    """Fisher merging with each expert's diagonal Fisher on its own data (1 evaluation);
    ``expert_data`` defaults to the problem's."""
    expert_data = problem.expert_data if expert_data is None else expert_data
    if len(expert_data) != problem.tv.n_models:
        raise ValueError(f"fisher: expert_data needs one task list per expert ({problem.tv.n_models})")
    states = expert_states(problem)
    module = problem.merged.module
    fishers = [diagonal_fisher(module, s, tasks, n_examples, empirical) for s, tasks in zip(states, expert_data)]
    merged = ops.fisher_merge(states, fishers)
    fit = problem.score_state(merged, "fitness")
    test = problem.score_state(merged, "test") if problem.test else None
    return BaselineResult("Fisher merging", 1, loss_of(fit, problem.metric), None, fit, test)


def search(problem: Any, optimizer: str = "cma", budget: int = 400, seed: int = 0, options: dict | None = None,
           name: str | None = None) -> BaselineResult:
    """Any bbopt optimizer over ``problem``'s genome space (``"random"``: random search)."""
    from bbopt.loop import minimize

    res = minimize(problem, optimizer, budget, seed=seed, options=options)
    rep = problem.report(res.x)
    label = name or f"{optimizer} over {problem.genome_spec.method} genome ({problem.space.dim}-d)"
    return BaselineResult(label, res.n_evals, float(res.fun), np.asarray(res.x).tolist(), rep["fitness"],
                          rep["test"], problem.genome_spec)


def expert_states(problem: Any) -> list[dict[str, torch.Tensor]]:
    """θ_k rebuilt from the cached task vectors (other tensors: the base values)."""
    return [problem.source_state_dict(k) for k in range(problem.tv.n_models)]
