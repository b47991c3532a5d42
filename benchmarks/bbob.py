"""E2: BBOB f1–f24, 10-D, instance 1, 100·d evaluations, 3 seeds.

Score per run: the fraction of the 51 standard COCO targets (f − f_opt ≤ 10^k,
k = 2, 1.8, …, −8) reached within the budget. Rows: bbopt's strategies (defaults) against
raw pycma with IPOP restarts (run as the reference note ran it: x0 uniform in [−4, 4]^d,
σ0 = 2, no bounds, λ doubling after each stop), nevergrad's CMA and NGOpt (through the
bbopt bridge) and uniform random search. f_opt comes from ``ioh``. bbopt's BBOB problems
declare [−5, 5]^d a *soft* box (COCO defines f everywhere); the "hard box" rows treat it
as a constraint, and set bbopt's CMA-ES (the search in the unit cube, pycma's BoundTransform
or BoundPenalty there) beside raw pycma given the same hard bounds [−5, 5]^d and the same
handler, so what the constraint costs is split into pycma's own bound handling and whatever
bbopt adds.

    python benchmarks/bbob.py [--seeds 3] [--dim 10] [--budget-per-dim 100] [--jobs 2] [--methods ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import cma
import numpy as np
from joblib import Parallel, delayed

from bbopt import minimize
from bbopt.problems import get

from _report import append, pin_threads, table

TARGETS = 10.0 ** np.arange(2, -8.01, -0.2)  # 51 targets
METHODS = {  # name: (optimizer, options, problem options)
    "bbopt cma": ("cma", {}, {}),
    "bbopt cma, hard box": ("cma", {}, {"soft_box": False}),
    "bbopt cma, no restarts": ("cma", {"restarts": 0}, {}),
    "bbopt nevergrad CMA": ("nevergrad", {"optimizer": "CMA"}, {}),
    "bbopt nevergrad NGOpt": ("nevergrad", {"optimizer": "NGOpt"}, {}),
    "bbopt random": ("random", {}, {}),
    "raw pycma IPOP": (None, {}, {}),
    "bbopt cma, hard box, penalty": ("cma", {"bounds_handling": "penalty"}, {"soft_box": False}),
    "raw pycma IPOP, hard box (BoundTransform)": ("raw:transform", {}, {"soft_box": False}),
    "raw pycma IPOP, hard box (BoundPenalty)": ("raw:penalty", {}, {"soft_box": False}),
    # optuna's distributions are intervals: its samplers search [−5, 5]^d as a hard box
    "bbopt optuna TPE": ("optuna", {}, {}),
    "bbopt optuna GP": ("optuna", {"sampler": "GPSampler"}, {}),
}


def raw_pycma_ipop(problem, budget: int, seed: int, handler: str | None = None) -> float:
    """The reference: pycma ask/tell, IPOP restarts, x0 ~ U[-4, 4]^d, σ0 = 2; unbounded, or with
    pycma's own bound handling of [−5, 5]^d (``handler``: "transform" or "penalty"; a penalised
    candidate is evaluated at its repair, the nearest point of the box, as pycma's docs say)."""
    rng = np.random.default_rng(seed)
    best, used, popsize = np.inf, 0, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while used < budget:
            opts = {"seed": int(rng.integers(1, 2**31)), "verbose": -9, "verb_log": 0, "verb_disp": 0,
                    "maxfevals": budget - used}
            if handler is not None:
                opts["bounds"] = [-5.0, 5.0]
                opts["BoundaryHandler"] = cma.BoundTransform if handler == "transform" else cma.BoundPenalty
            if popsize:
                opts["popsize"] = popsize
            es = cma.CMAEvolutionStrategy(rng.uniform(-4, 4, problem.space.dim), 2.0, opts)
            while not es.stop() and used < budget:
                X = es.ask()
                X = X[: budget - used]
                f = problem.evaluate(np.clip(np.asarray(X), -5.0, 5.0) if handler else np.asarray(X))
                used += len(X)
                best = min(best, float(np.min(f)))
                if len(X) == es.popsize:
                    es.tell(X, f.tolist())
            popsize = 2 * es.popsize
    return best


def run_one(method: str, fid: int, dim: int, seed: int, instance: int = 1,
            per_dim: int = 100) -> tuple[str, int, int, float, float]:
    pin_threads(1)
    name, options, problem_options = METHODS[method]
    problem = get("bbob", function=fid, dim=dim, instance=instance, **problem_options)
    budget = per_dim * dim
    t0 = time.process_time()
    if name is None or name.startswith("raw:"):
        best = raw_pycma_ipop(problem, budget, seed, None if name is None else name.removeprefix("raw:"))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            best = minimize(problem, name, budget, seed=seed, options=dict(options), progress=False).fun
    return method, fid, seed, best - problem.optimum, time.process_time() - t0


def fraction(gap: float) -> float:
    return float(np.mean(gap <= TARGETS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--instance", type=int, default=1)
    parser.add_argument("--budget-per-dim", type=int, default=100)
    args = parser.parse_args()
    pin_threads(1)
    budget = args.budget_per_dim * args.dim
    jobs = [(m, f, args.dim, s, args.instance, args.budget_per_dim) for m in args.methods for f in range(1, 25) for s in range(args.seeds)]
    results = Parallel(n_jobs=args.jobs)(delayed(run_one)(*job) for job in jobs)
    rows = []
    per_function = {}
    for method in args.methods:
        mine = [r for r in results if r[0] == method]
        by_seed = [statistics.mean(fraction(r[3]) for r in mine if r[2] == s) for s in range(args.seeds)]
        medians = [statistics.median(fraction(r[3]) for r in mine if r[1] == f) for f in range(1, 25)]
        per_function[method] = [statistics.median(np.log10(max(r[3], 1e-9)) for r in mine if r[1] == f)
                                for f in range(1, 25)]
        cpu = sum(r[4] for r in mine)
        separable = statistics.mean(fraction(r[3]) for r in mine if r[1] <= 5)
        rows.append([method, f"{statistics.mean(by_seed):.3f}", f"{min(by_seed):.3f}–{max(by_seed):.3f}",
                     f"{statistics.mean(medians):.3f}", f"{separable:.3f}",
                     f"{cpu / len(mine) * 1000 / budget:.3f}"])
    body = table(["method", "mean fraction of targets", "range over seeds", "median-over-seeds fraction",
                  "f1–f5 (separable) fraction", "CPU ms / evaluation"], rows)
    detail = table(["f"] + args.methods,
                   [[f"f{f}"] + [f"{per_function[m][f - 1]:.2f}" for m in args.methods] for f in range(1, 25)])
    append(f"E2 — BBOB f1–f24, {args.dim}-D, instance {args.instance}, {budget} evaluations, "
           f"{args.seeds} seeds",
           body + "\n\nPer function: median over seeds of log10(f_best − f_opt) (−9 = solved to 1e-9):\n\n"
           + detail,
           "Reference figures from the research note (same metric, median over seeds): pycma-IPOP 0.190, "
           "NGOpt 0.194, nevergrad CMA 0.172, random 0.040. NGOpt is not reproducible from a seed (nevergrad "
           "#1572), so its row varies between runs. Hard-box rows: the same problems with [−5, 5]^d a "
           "constraint; raw pycma is given those bounds with its BoundTransform or BoundPenalty (a penalised "
           "candidate evaluated at its repair) and otherwise runs as its unbounded row.")


if __name__ == "__main__":
    main()
