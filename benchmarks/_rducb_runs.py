"""Shared by the RDUCB benchmarks (R1, R2): run methods × seeds on a problem, summarise regret.

Every bbopt run goes through ``bbopt.minimize`` with the method's registered defaults (a
labelled variant sets one option), so the numbers are what a user gets; the BoTorch anchor
(``_botorch_anchor``, the ``bench`` extra) runs BoTorch's own loop. Regret = best loss −
optimum (or the best loss itself when the optimum is unknown). Spread: mean ± standard
error over seeds; ratios are paired by seed. Time per evaluation = the run's time / budget.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
from joblib import Parallel, delayed

from bbopt import minimize
from bbopt.problems import get

#: label -> (registered name, options); "botorch" is the BoTorch anchor, not a bbopt strategy
METHODS = {
    "RDUCB": ("rducb", {}),
    "TuRBO-1": ("turbo", {}),
    "GP-UCB (full D)": ("gp-ucb", {}),
    "BoTorch SingleTaskGP + qLogEI": ("botorch", {}),
    "RDUCB, tied prior": ("rducb", {"lengthscale_prior": "tied"}),
    "RDUCB, dimension-scaled prior": ("rducb", {"lengthscale_prior": "dimension-scaled"}),
    "TuRBO-1, tied prior": ("turbo", {"lengthscale_prior": "tied"}),
    "TuRBO-1, dimension-scaled prior": ("turbo", {"lengthscale_prior": "dimension-scaled"}),
    "GP-UCB, tied prior": ("gp-ucb", {"lengthscale_prior": "tied"}),
    "GP-UCB, dimension-scaled prior": ("gp-ucb", {"lengthscale_prior": "dimension-scaled"}),
    "CMA-ES (bbopt)": ("cma", {}),
    "nevergrad NGOpt": ("nevergrad", {"optimizer": "NGOpt"}),
    "optuna TPE": ("optuna", {}),
    "optuna GP": ("optuna", {"sampler": "GPSampler"}),
    "random search": ("random", {}),
}
#: what runs without --methods: every method at its defaults (the prior variants are for the prior study)
DEFAULT_METHODS = [m for m in METHODS if "prior" not in m]


def one_run(problem_spec: dict, method: str, budget: int, seed: int, checkpoints: tuple[int, ...],
            overrides: dict | None = None) -> dict:
    """Run one method on one seed; the regret at each checkpoint and the run's wall/CPU time."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    spec = dict(problem_spec)
    problem = get(spec.pop("name"), **spec)
    name, options = METHODS[method]
    options = {**options, **(overrides or {}).get(method, {})}
    t0, c0 = time.perf_counter(), time.process_time()
    if name == "botorch":
        import torch
        from _botorch_anchor import botorch_minimize

        torch.set_num_threads(1)
        anchor = botorch_minimize(problem, budget, seed, **options)
        losses, best_x = anchor["losses"], anchor["x"]
    else:
        result = minimize(problem, name, budget, seed=seed, options=dict(options), progress=False)
        losses = np.array([r["loss"] if r["loss"] is not None else np.inf for r in result.history], dtype=float)
        best_x = result.x
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    best = np.minimum.accumulate(losses)
    offset = problem.optimum if problem.optimum is not None else 0.0
    out = {"method": method, "seed": seed, "wall": wall, "cpu": cpu,
           "regret": {c: float(best[min(c, len(best)) - 1] - offset) for c in checkpoints}}
    if hasattr(problem, "test_loss") and best_x is not None:
        out["test"] = float(problem.test_loss(best_x))
    return out


def run_grid(problem_spec: dict, methods: list[str], seeds: list[int], budget: int, checkpoints: tuple[int, ...],
             jobs: int, overrides: dict | None = None) -> list[dict]:
    """Every (method, seed) run; ``overrides``: per-method options on top of the defaults."""
    tasks = [(m, s) for m in methods for s in seeds]
    return Parallel(n_jobs=jobs, backend="loky")(
        delayed(one_run)(problem_spec, m, budget, s, checkpoints, overrides) for m, s in tasks)


def mean_se(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4g}"
    se = statistics.stdev(values) / np.sqrt(len(values))
    return f"{statistics.mean(values):.4g} ± {se:.2g}"


def summary_rows(runs: list[dict], methods: list[str], budget: int, checkpoints: tuple[int, ...],
                 reference: str = "RDUCB") -> list[list]:
    """One row per method: regret at each checkpoint (mean ± s.e.), per-seed values, paired
    ratio reference/method at the budget, mean wall and CPU seconds per run."""
    ref = {r["seed"]: r["regret"][budget] for r in runs if r["method"] == reference}
    rows = []
    for method in methods:
        mine = sorted((r for r in runs if r["method"] == method), key=lambda r: r["seed"])
        row = [method] + [mean_se([r["regret"][c] for r in mine]) for c in checkpoints]
        row.append(", ".join(f"{r['regret'][budget]:.4g}" for r in mine))
        ratios = [ref[r["seed"]] / r["regret"][budget] for r in mine if r["seed"] in ref and r["regret"][budget] > 0]
        row.append(f"{statistics.mean(ratios):.3f}" if ratios and method != reference else "—")
        if any("test" in r for r in runs):
            row.append(mean_se([r["test"] for r in mine]) if "test" in mine[0] else "—")
        row += [f"{statistics.mean(r['wall'] for r in mine):.0f}", f"{statistics.mean(r['cpu'] for r in mine):.0f}",
                f"{statistics.mean(r['wall'] for r in mine) / budget:.3g}",
                f"{statistics.mean(r['cpu'] for r in mine) / budget:.3g}"]
        rows.append(row)
    return rows


def header(checkpoints: tuple[int, ...], with_test: bool = False) -> list[str]:
    cols = ["method"] + [f"regret @{c}" for c in checkpoints] + ["per seed @budget", "RDUCB / method (paired)"]
    if with_test:
        cols.append("test loss of best x")
    return cols + ["wall s/run", "CPU s/run", "wall s/eval", "CPU s/eval"]


ANCHOR = "BoTorch SingleTaskGP + qLogEI"


def r4_verdict(runs: list[dict], budget: int, additive: bool, reference: str = "RDUCB") -> str:
    """R4 against the BoTorch anchor, paired by seed: mean regret of ``reference`` ≤ BoTorch's
    (≤ 0.5× on additive problems) at ≤ 0.5× its wall time per evaluation; '' without BoTorch rows."""
    mine = {r["seed"]: r for r in runs if r["method"] == reference}
    anchor = {r["seed"]: r for r in runs if r["method"] == ANCHOR}
    seeds = sorted(set(mine) & set(anchor))
    if not seeds:
        return ""
    ours = statistics.mean(mine[s]["regret"][budget] for s in seeds)
    theirs = statistics.mean(anchor[s]["regret"][budget] for s in seeds)
    time_ratio = statistics.mean(mine[s]["wall"] for s in seeds) / statistics.mean(anchor[s]["wall"] for s in seeds)
    target = 0.5 if additive else 1.0
    met = ours <= target * theirs and time_ratio <= 0.5
    return (f"R4 ({len(seeds)} paired seeds{'' if len(seeds) >= 5 else ', fewer than the 5 the bar asks'}): "
            f"{reference} mean regret {ours:.4g} vs BoTorch {theirs:.4g} (ratio {ours / theirs:.3f}, bar ≤ {target}); "
            f"wall time ratio {time_ratio:.3f} (bar ≤ 0.5): {'met' if met and len(seeds) >= 5 else 'not met'}.")
