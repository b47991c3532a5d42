"""Shared by the RDUCB benchmarks (R1, R2): run methods × seeds on a problem, summarise regret.

Every bbopt run goes through ``bbopt.minimize`` with the method's registered defaults (a
labelled variant sets one option), so the numbers are what a user gets; the BoTorch anchor
(``_botorch_anchor``, the ``bench`` extra) runs BoTorch's own loop. Regret = best loss −
optimum (or the best loss itself when the optimum is unknown); with observation noise
(``obs_noise_var`` in the problem spec) the regret is that of the noiseless function at the
points evaluated. Spread: mean ± standard
error over seeds; ratios are paired by seed. Time per evaluation = the run's time / budget.

Each finished run is kept in ``benchmarks/runs/rducb/`` (ignored by git) under a key made of
the problem, method, options, budget, seed and a per-method ``VERSION``, so an interrupted
grid resumes where it stopped and tables are rebuilt without rerunning; bump ``VERSION``
when a change alters what a method does at given options.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from bbopt import FunctionProblem, minimize
from bbopt.optimizer import optimizer_class
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
    "RDUCB, no prior": ("rducb", {"lengthscale_prior": None}),
    "TuRBO-1, no prior": ("turbo", {"lengthscale_prior": None}),
    "GP-UCB, no prior": ("gp-ucb", {"lengthscale_prior": None}),
    "RDUCB, power transform": ("rducb", {"output_transform": "power"}),
    "TuRBO-1, power transform": ("turbo", {"output_transform": "power"}),
    "GP-UCB, power transform": ("gp-ucb", {"output_transform": "power"}),
    "RDUCB, power transform, noise_var 0.1": ("rducb", {"output_transform": "power", "noise_var": 0.1}),
    "CMA-ES (bbopt)": ("cma", {}),
    "nevergrad NGOpt": ("nevergrad", {"optimizer": "NGOpt"}),
    "optuna TPE": ("optuna", {}),
    "optuna GP": ("optuna", {"sampler": "GPSampler"}),
    "random search": ("random", {}),
}
#: what runs without --methods: every method at its defaults (the variants are for the prior and transform studies)
DEFAULT_METHODS = [m for m in METHODS if "," not in m]
CACHE = Path(__file__).resolve().parent / "runs" / "rducb"
#: bumped whenever a method's behaviour at given options changes (stale cached runs then miss)
VERSION = {"rducb": 1, "turbo": 1, "gp-ucb": 1, "botorch": 1}
#: options whose *default* values enter the key too, so changing a default moves the default row
WATCHED = ("lengthscale_prior", "output_transform")
#: watched options at these values are left out of the key (the behaviour before they existed)
NEUTRAL = {"output_transform": "standardize"}


def _key(problem_spec: dict, method: str, budget: int, seed: int, overrides: dict | None) -> Path:
    """The cache file of a run: problem, strategy, its explicit options and the current
    defaults of the WATCHED ones (so a variant that spells out a default shares the default's
    runs), budget, seed and the method's VERSION."""
    name, options = METHODS[method]
    options = {**options, **(overrides or {}).get(method, {})}
    if name != "botorch":
        params = inspect.signature(optimizer_class(name)).parameters
        options = {**{k: params[k].default for k in WATCHED if k in params}, **options}
        options = {k: v for k, v in options.items() if k not in NEUTRAL or NEUTRAL[k] != v}
    text = json.dumps([problem_spec, name, options, budget, seed, VERSION.get(name, 0)], sort_keys=True)
    return CACHE / f"{hashlib.sha256(text.encode()).hexdigest()[:20]}.json"


def one_run(problem_spec: dict, method: str, budget: int, seed: int, checkpoints: tuple[int, ...],
            overrides: dict | None = None, cached_only: bool = False) -> dict | None:
    """One method on one seed (from the cache when it ran before): the regret at each checkpoint
    reached and the run's wall/CPU time. ``cached_only``: never run; a finished run, else the
    progress of an interrupted BoTorch run (``"partial": True``), else None."""
    path = _key(problem_spec, method, budget, seed, overrides)
    partial = path.with_suffix(".partial")
    if path.exists():
        out = json.loads(path.read_text())
    elif cached_only:
        if not partial.exists():
            return None
        out = {**json.loads(partial.read_text()), "partial": True}
    else:
        out = {**_run(problem_spec, method, budget, seed, overrides, partial), "spec": problem_spec,
               "budget": budget}
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out))
    curve = out["curve"]
    return {**out, "regret": {c: curve[c - 1] for c in checkpoints if c <= len(curve)}}


def noisy(problem, noise_var: float, seed: int) -> tuple[FunctionProblem, list]:
    """``problem`` observed with Gaussian noise of variance ``noise_var`` (the RDUCB paper's
    ``fn_noise_var``), and the list its noiseless values are appended to, in evaluation order."""
    rng = np.random.default_rng([seed, 2023])
    clean: list[float] = []

    def f(X: np.ndarray) -> np.ndarray:
        values = problem.evaluate(X)
        clean.extend(values.tolist())
        return values + np.sqrt(noise_var) * rng.standard_normal(len(values))

    return FunctionProblem(f, problem.space, vectorized=True, optimum=problem.optimum), clean


def _run(problem_spec: dict, method: str, budget: int, seed: int, overrides: dict | None, partial: Path) -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    spec = dict(problem_spec)
    noise_var = spec.pop("obs_noise_var", 0.0)
    problem = get(spec.pop("name"), **spec)
    clean = None
    if noise_var:
        problem, clean = noisy(problem, noise_var, seed)
    name, options = METHODS[method]
    options = {**options, **(overrides or {}).get(method, {})}
    offset = problem.optimum if problem.optimum is not None else 0.0
    t0, c0 = time.perf_counter(), time.process_time()

    def summary(losses: np.ndarray) -> dict:
        best = np.minimum.accumulate(losses if clean is None else np.array(clean))  # regret on the noiseless f
        return {"method": method, "seed": seed, "wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
                "curve": [float(b - offset) for b in best]}

    if name == "botorch":
        import torch
        from _botorch_anchor import botorch_minimize

        def on_step(losses: np.ndarray) -> None:
            CACHE.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(summary(losses)))

        torch.set_num_threads(1)
        anchor = botorch_minimize(problem, budget, seed, on_step=on_step, **options)
        losses, best_x = anchor["losses"], anchor["x"]
    else:
        result = minimize(problem, name, budget, seed=seed, options=dict(options), progress=False)
        losses = np.array([r["loss"] if r["loss"] is not None else np.inf for r in result.history], dtype=float)
        best_x = result.x
    out = summary(losses)
    if hasattr(problem, "test_loss") and best_x is not None:
        out["test"] = float(problem.test_loss(best_x))
    return out


def run_grid(problem_spec: dict, methods: list[str], seeds: list[int], budget: int, checkpoints: tuple[int, ...],
             jobs: int, overrides: dict | None = None, cached_only: bool = False) -> list[dict]:
    """Every (method, seed) run; ``overrides``: per-method options on top of the defaults;
    ``cached_only``: only what the cache holds (see ``one_run``), nothing is run."""
    tasks = [(m, s) for m in methods for s in seeds]
    if cached_only:
        runs = [one_run(problem_spec, m, budget, s, checkpoints, overrides, cached_only=True) for m, s in tasks]
        return [r for r in runs if r is not None]
    return Parallel(n_jobs=jobs, backend="loky")(
        delayed(one_run)(problem_spec, m, budget, s, checkpoints, overrides) for m, s in tasks)


def mean_se(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4g}"
    se = statistics.stdev(values) / np.sqrt(len(values))
    return f"{statistics.mean(values):.4g} ± {se:.2g}"


def summary_rows(runs: list[dict], methods: list[str], budget: int, checkpoints: tuple[int, ...],
                 reference: str = "RDUCB") -> list[list]:
    """One row per method: regret at each checkpoint (mean ± s.e.; "(k seeds)" when only k of
    the runs reached it: interrupted BoTorch runs), per-seed values at the budget, paired
    ratio reference/method at the budget, mean wall and CPU seconds per run and per evaluation."""
    ref = {r["seed"]: r["regret"][budget] for r in runs if r["method"] == reference and budget in r["regret"]}
    rows = []
    for method in methods:
        mine = sorted((r for r in runs if r["method"] == method), key=lambda r: r["seed"])
        if not mine:
            continue
        row = [method]
        for c in checkpoints:
            values = [r["regret"][c] for r in mine if c in r["regret"]]
            row.append((mean_se(values) + ("" if len(values) == len(mine) else f" ({len(values)} seeds)"))
                       if values else "—")
        row.append(", ".join(f"{r['regret'][budget]:.4g}" if budget in r["regret"] else
                             f"[{len(r['curve'])} evals: {r['curve'][-1]:.4g}]" for r in mine))
        ratios = [ref[r["seed"]] / r["regret"][budget] for r in mine
                  if budget in r["regret"] and r["seed"] in ref and r["regret"][budget] > 0]
        row.append(f"{statistics.mean(ratios):.3f}" if ratios and method != reference else "—")
        if any("test" in r for r in runs):
            row.append(mean_se([r["test"] for r in mine if "test" in r]) if any("test" in r for r in mine) else "—")
        full = [r for r in mine if budget in r["regret"]]
        row += [f"{statistics.mean(r['wall'] for r in full):.0f}" if full else "—",
                f"{statistics.mean(r['cpu'] for r in full):.0f}" if full else "—",
                f"{statistics.mean(r['wall'] / len(r['curve']) for r in mine):.3g}",
                f"{statistics.mean(r['cpu'] / len(r['curve']) for r in mine):.3g}"]
        rows.append(row)
    return rows


def header(checkpoints: tuple[int, ...], with_test: bool = False) -> list[str]:
    cols = ["method"] + [f"regret @{c}" for c in checkpoints] + ["per seed @budget", "RDUCB / method (paired)"]
    if with_test:
        cols.append("test loss of best x")
    return cols + ["wall s/run", "CPU s/run", "wall s/eval", "CPU s/eval"]


ANCHOR = "BoTorch SingleTaskGP + qLogEI"


def r4_verdict(runs: list[dict], checkpoints: tuple[int, ...], additive: bool, reference: str = "RDUCB") -> str:
    """R4 against the BoTorch anchor, paired by seed at the largest checkpoint both reached:
    mean regret of ``reference`` ≤ BoTorch's (≤ 0.5× on additive problems) at ≤ 0.5× its wall
    time per evaluation (CPU time per evaluation beside it); '' without BoTorch runs."""
    for at in sorted(checkpoints, reverse=True):
        mine = {r["seed"]: r for r in runs if r["method"] == reference and at in r["regret"]}
        anchor = {r["seed"]: r for r in runs if r["method"] == ANCHOR and at in r["regret"]}
        seeds = sorted(set(mine) & set(anchor))
        if seeds:
            break
    else:
        return ""
    ours = statistics.mean(mine[s]["regret"][at] for s in seeds)
    theirs = statistics.mean(anchor[s]["regret"][at] for s in seeds)

    def per_eval(table: dict, what: str) -> float:
        return statistics.mean(table[s][what] / len(table[s]["curve"]) for s in seeds)

    wall_ratio = per_eval(mine, "wall") / per_eval(anchor, "wall")
    cpu_ratio = per_eval(mine, "cpu") / per_eval(anchor, "cpu")
    target = 0.5 if additive else 1.0
    met = ours <= target * theirs and wall_ratio <= 0.5 and len(seeds) >= 5 and at == max(checkpoints)
    return (f"R4 at {at} evaluations ({len(seeds)} paired seeds"
            f"{'' if len(seeds) >= 5 else ', fewer than the 5 the bar asks'}): {reference} mean regret {ours:.4g} "
            f"vs BoTorch {theirs:.4g} (ratio {ours / theirs:.3f}, bar ≤ {target}); time per evaluation ratio: wall "
            f"{wall_ratio:.3f} (bar ≤ 0.5), CPU {cpu_ratio:.3f}: {'met' if met else 'not met'}.")
