"""A sequence of linear systems solved by SOR / red–black SOR / SSOR-PCG: pick ω per system.

"Learning to Relax" (Khodak et al., ICLR 2024): round t presents system A_t x = b_t from a
stream (:mod:`bbopt.problems.linear_systems`); the learner picks an arm ω from the grid
(``space = Choice(omegas)``), the solver runs to ``‖b − Ax‖/‖b‖ < tol`` and the loss is
the cost: iterations (default) or wall-clock seconds (then give learners ``cost_offset=0``).
Contextual learners see ``context(t)`` (e.g. the shift c of A + cI, or κ(t)).

Each solve is logged (round, context, arm, ω, iterations, seconds, converged) in the
problem's state, so checkpoints carry it (``evaluate_has_side_effects``: a resumed run
re-solves instead of reusing history lines, which also keeps warm-started streams exact).
``finalize`` writes ``systems.csv`` and ``sor_summary.json`` into the run directory; with
``baselines=True`` the summary compares against ω = 1, the best fixed ω in hindsight, the
instance-optimal grid ω and Young's ω* (i.i.d. streams only: it re-solves every system on
every arm).
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from bbopt.batch import Batch
from bbopt.linsolve import (
    RedBlackSplit,
    SolveResult,
    estimate_jacobi_radius,
    pcg,
    redblack_sor,
    sor,
    young_omega,
)
from bbopt.linsolve.result import check_controls
from bbopt.linsolve.sor import KERNELS
from bbopt.options import OptionError, positive, unused
from bbopt.problem import Problem
from bbopt.problems.linear_systems import (
    DiffusionStream,
    HeatEquationStream,
    LinearSystem,
    ShiftedPoissonStream,
    as_stream,
)
from bbopt.spaces import Choice

SOLVERS = ("sor", "redblack", "ssor-pcg")
CONTEXT_SOURCES = ("stream", "young")
COSTS = ("iterations", "time")
_LOG_FIELDS = ("round", "context", "arm", "omega", "iterations", "seconds", "converged")


def omega_grid(n: int = 20, low: float = 1.0, high: float = 1.95, spacing: str = "linear") -> list[float]:
    """``n`` relaxation factors in [low, high]: evenly spaced, or evenly in log(2 − ω) (``"log"``:
    dense near 2, where ω* goes on large grids)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n_omegas must be a positive integer, got {n!r}")
    if not (0.0 < low <= high < 2.0):
        raise ValueError(f"omega_range must satisfy 0 < low ≤ high < 2, got ({low}, {high})")
    if spacing == "linear":
        return [float(w) for w in np.linspace(low, high, int(n))]
    if spacing == "log":
        return [float(2.0 - g) for g in np.geomspace(2.0 - low, 2.0 - high, int(n))]
    raise ValueError(f"grid must be 'linear' or 'log', got {spacing!r}")


class SORSequenceProblem(Problem):
    """Tune ω over a stream of systems; one evaluation = one system solved with one arm.

    ``stream``: a Stream, a function ``t -> (A, b, context)``, an iterable, or ``"module:attr"``.
    ``solver``: ``"sor"`` (lexicographic), ``"redblack"`` (colours from the stream's stencil, or
    from A's graph: any matrix whose couplings are 2-colourable, e.g. 5-point stencils; others
    are refused with the reason) or ``"ssor-pcg"``. ``omegas`` overrides the grid built from ``grid``/``n_omegas``/``omega_range``.

    ``context_source``: ``"stream"`` (the stream's own context, e.g. the shift c) or ``"young"``:
    the context is ω̂ = Young's ω* of a ``young_steps``-step Lanczos estimate of the Jacobi
    radius (:func:`~bbopt.linsolve.estimate_jacobi_radius`), in ``context_range`` (1, 2), and
    every system's cost includes that work: ``young_steps`` iterations (one matrix–vector
    product each, about one SOR sweep) or, with ``cost="time"``, the estimate's seconds.
    Contextual learners then use Young's prior (``prior: young``, recommended for ``chebcb``).
    """

    evaluate_has_side_effects = True
    space: Choice

    def __init__(self, stream: Any, solver: str = "sor", omegas: list[float] | None = None, grid: str = "linear",
                 n_omegas: int = 20, omega_range: tuple[float, float] = (1.0, 1.95), cost: str = "iterations",
                 tol: float = 1e-8, maxiter: int = 10_000, kernel: str = "auto", baselines: bool = False,
                 context_range: tuple[float, float] | None = None, context_source: str = "stream",
                 young_steps: int = 6):
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
        if cost not in COSTS:
            raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
        if omegas is None:
            omegas = omega_grid(n_omegas, *omega_range, spacing=grid)
        bad = [w for w in omegas if not (isinstance(w, (int, float)) and 0 < w < 2)]
        if not omegas or bad:
            raise ValueError(f"omegas must be numbers in (0, 2), got {bad or omegas!r}")
        self.stream = as_stream(stream, context_range)
        self.space = Choice([float(w) for w in omegas])
        self.solver, self.cost, self.kernel = solver, cost, kernel
        self.tol, self.maxiter, self.baselines = tol, maxiter, bool(baselines)
        if context_source not in CONTEXT_SOURCES:
            raise OptionError("context_source", f"context_source must be one of {CONTEXT_SOURCES}, got {context_source!r}")
        if context_source == "stream" and young_steps != 6:
            raise unused("young_steps", "sor problem", "with context_source='stream' (no Young estimate is made)")
        self.context_source = context_source
        self.young_steps = positive(young_steps, "young_steps", "sor problem", integer=True)
        self._young: tuple[int, float, float] | None = None  # (round, ω̂, seconds) of the last estimate
        default_range = (1.0, 2.0) if context_source == "young" else self.stream.context_range
        self.context_range = default_range if context_range is None else tuple(context_range)
        self._log: dict[str, list] = {k: [] for k in _LOG_FIELDS}
        check_controls(tol, maxiter, 1e8)
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")

    # -------------------------------------------------------------- protocol
    def context(self, t: int) -> float | None:
        if self.context_source == "young":
            return self.young_estimate(int(t))[0]
        return self.stream.context(t)

    def young_estimate(self, t: int) -> tuple[float, float]:
        """``(ω̂, seconds)`` for system ``t``: Young's ω* of the estimated Jacobi radius (cached per round)."""
        if self._young is None or self._young[0] != t:
            t0 = time.perf_counter()
            beta = estimate_jacobi_radius(self.stream.instance(t).A, self.young_steps)
            self._young = (t, young_omega(beta=beta), time.perf_counter() - t0)
        return self._young[1], self._young[2]

    def recommended_options(self, optimizer: str) -> dict:
        return {"prior": "young"} if self.context_source == "young" and optimizer == "chebcb" else {}

    def evaluate(self, batch: Any) -> np.ndarray:
        t = batch.round if isinstance(batch, Batch) else None
        if t is None:
            raise ValueError("SORSequenceProblem.evaluate needs a Batch with .round (the system to solve); "
                             "run it through bbopt.minimize or set batch.round")
        system = self.stream.instance(int(t))
        arms = self.space.validate(batch.x)
        charge = 0.0
        if self.context_source == "young":  # the estimate behind the context is part of every solve's cost
            charge = float(self.young_steps) if self.cost == "iterations" else self.young_estimate(int(t))[1]
        costs, first = [], None
        for arm in arms.tolist():
            res, seconds = self.solve(system, self.space.values[arm])
            first = res if first is None else first
            self._record(int(t), system.context, arm, res, seconds)
            costs.append(charge + (float(res.iterations) if self.cost == "iterations" else seconds))
        if self.stream.stateful and first is not None:
            self.stream.advance(int(t), first.x)  # the first candidate's solution carries the state
        return np.asarray(costs, dtype=float)

    def solve(self, system: LinearSystem, omega: float) -> tuple[SolveResult, float]:
        """One solve of ``system`` with relaxation ``omega``: ``(result, wall seconds)``."""
        kw: dict[str, Any] = {"tol": self.tol, "maxiter": self.maxiter}
        t0 = time.perf_counter()
        if self.solver == "sor":
            res = sor(system.A, system.b, omega, system.x0, kernel=self.kernel, **kw)
        elif self.solver == "redblack":
            split = RedBlackSplit(system.A) if system.stencil is None else RedBlackSplit.from_stencil(system.stencil)
            res = redblack_sor(split, system.b, omega, system.x0, **kw)
        else:
            res = pcg(system.A, system.b, omega, system.x0, kernel=self.kernel, **kw)
        return res, time.perf_counter() - t0

    def _record(self, t: int, context: float | None, arm: int, res: SolveResult, seconds: float) -> None:
        row = (t, math.nan if context is None else float(context), arm, self.space.values[arm],
               res.iterations, seconds, res.converged)
        for key, value in zip(_LOG_FIELDS, row):
            self._log[key].append(value)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        log = {k: np.asarray(v, dtype=float if k in ("context", "omega", "seconds") else np.int64)
               for k, v in self._log.items()}
        return {"stream": self.stream.state_dict(), "log": log}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        self.stream.load_state_dict(state.get("stream") or {})
        self._log = {k: np.asarray(state["log"][k]).tolist() for k in _LOG_FIELDS}
        self._log["converged"] = [bool(v) for v in self._log["converged"]]

    def log(self) -> dict[str, np.ndarray]:
        """The per-solve log as arrays ``(n_solves,)``: round, context, arm, omega, iterations, seconds, converged."""
        return {k: np.asarray(v) for k, v in self._log.items()}

    # ------------------------------------------------------------ baselines
    def cost_table(self, rounds: Any, arms: Any = None) -> np.ndarray:
        """Iterations ``(len(rounds), len(arms))`` of each arm (default: all) on each listed system
        (i.i.d. streams)."""
        self._require_iid("cost_table")
        arms = range(self.space.n_arms) if arms is None else self.space.validate(arms).tolist()
        table = np.empty((len(rounds), len(arms)), dtype=np.int64)
        for row, t in enumerate(rounds):
            system = self.stream.instance(int(t))
            table[row] = [self.solve(system, self.space.values[a])[0].iterations for a in arms]
        return table

    def young_costs(self, rounds: Any) -> np.ndarray:
        """Iterations ``(len(rounds),)`` with Young's ω* per system (an oracle: needs β = ρ(I − D⁻¹A))."""
        self._require_iid("young_costs")
        out = np.empty(len(rounds), dtype=np.int64)
        for row, t in enumerate(rounds):
            system = self.stream.instance(int(t))
            beta = system.jacobi_radius
            w = young_omega(beta=beta) if beta is not None else young_omega(system.A)
            out[row] = self.solve(system, w)[0].iterations
        return out

    def _require_iid(self, what: str) -> None:
        if self.stream.stateful:
            raise ValueError(f"{what} re-solves systems out of order; a sequential stream "
                             f"({type(self.stream).__name__}) cannot (see benchmarks/sor_heat.py)")

    def summary(self, baselines: bool | None = None) -> dict:
        """Mean cost of the run; with baselines, also ω = 1, best fixed ω, instance-optimal, Young."""
        log = self.log()
        if log["round"].size == 0:
            return {"systems": 0}
        out: dict[str, Any] = {"systems": int(np.unique(log["round"]).size), "mean_iterations": float(log["iterations"].mean()),
                               "mean_seconds": float(log["seconds"].mean()),
                               "not_converged": int((~log["converged"].astype(bool)).sum())}
        if baselines if baselines is not None else self.baselines:
            rounds = np.unique(log["round"])
            table = self.cost_table(rounds)
            means = table.mean(axis=0)
            best = int(means.argmin())
            out["omega_1"] = self._omega_one(rounds, table)
            out["best_fixed"] = {"omega": self.space.values[best], "mean_iterations": float(means[best])}
            out["instance_optimal_grid"] = float(table.min(axis=1).mean())
            if self.solver != "ssor-pcg":
                out["instance_optimal_young"] = float(self.young_costs(rounds).mean())
        return out

    def _omega_one(self, rounds: np.ndarray, table: np.ndarray) -> float:
        if 1.0 in self.space.values:
            return float(table[:, self.space.values.index(1.0)].mean())
        return float(np.mean([self.solve(self.stream.instance(int(t)), 1.0)[0].iterations for t in rounds]))

    def finalize(self, result: Any, run_dir: str | Path) -> None:
        """Write ``systems.csv`` (one row per solve) and ``sor_summary.json`` into ``run_dir``."""
        run_dir = Path(run_dir)
        log = self.log()
        with open(run_dir / "systems.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(_LOG_FIELDS)
            writer.writerows(zip(*(log[k].tolist() for k in _LOG_FIELDS)))
        (run_dir / "sor_summary.json").write_text(json.dumps(self.summary(), indent=2))

    def describe(self) -> dict:
        return {"problem": "SORSequenceProblem", "solver": self.solver, "cost": self.cost, "tol": self.tol,
                "maxiter": self.maxiter, "omegas": self.space.values, **self.stream.describe()}


def poisson_problem(m: int = 10, distribution: str = "high", seed: int = 0, offset: float | None = None,
                    scale: float | None = None, beta: tuple[float, float] | None = None, **options: Any) -> SORSequenceProblem:
    """Shifted 2-D Poisson systems (:class:`ShiftedPoissonStream`) + :class:`SORSequenceProblem` ``options``."""
    stream = ShiftedPoissonStream(m, distribution, seed, offset, scale, beta)
    return SORSequenceProblem(stream, **options)


def diffusion_problem(m: int = 24, seed: int = 0, contrast: float = 100.0, solver: str = "redblack",
                      **options: Any) -> SORSequenceProblem:
    """Variable-coefficient diffusion systems (:class:`DiffusionStream`), red–black SOR by default."""
    return SORSequenceProblem(DiffusionStream(m, seed, contrast), solver=solver, **options)


def heat_problem(nx: int = 50, steps: int = 1000, dt: float = 1e-3, solver: str = "ssor-pcg",
                 **options: Any) -> SORSequenceProblem:
    """Crank–Nicolson heat-equation steps (:class:`HeatEquationStream`), SSOR-PCG by default."""
    return SORSequenceProblem(HeatEquationStream(nx, steps, dt), solver=solver, **options)
