"""R2: RDUCB in higher dimensions and off its home ground, against the same baselines as R1.

Problems: Styblinski–Tang 50-D and 100-D on [−4, 4]^D (additive), Rosenbrock 20-D on
[−5, 10]^20 (a chained valley, not additive: trust regions are expected to win) and the
real 65-D weighted-Lasso problem (diabetes, degree-2 features; loss = 5-fold CV
MSE/variance, optimum unknown, so its "regret" column is the loss itself and the table adds
the held-out test loss of each run's best penalties and the best single shared penalty).
Each problem is appended to RESULTS.md as soon as it finishes.

    python benchmarks/rducb_r2.py [--problems st50 st100 rosenbrock20 lasso] [--seeds 0 1 2]
                                  [--budget 300] [--jobs 1] [--methods ...]
"""

from __future__ import annotations

import argparse

import numpy as np
from _rducb_runs import DEFAULT_METHODS, METHODS, header, r4_verdict, run_grid, summary_rows

from bbopt.problems import get

from _report import append, pin_threads, table

PROBLEMS = {
    "st50": ({"name": "styblinski-tang", "dim": 50, "lower": -4.0, "upper": 4.0}, "Styblinski–Tang 50-D"),
    "st100": ({"name": "styblinski-tang", "dim": 100, "lower": -4.0, "upper": 4.0}, "Styblinski–Tang 100-D"),
    "rosenbrock20": ({"name": "rosenbrock", "dim": 20, "lower": -5.0, "upper": 10.0}, "Rosenbrock 20-D"),
    "lasso": ({"name": "lasso", "dataset": "diabetes", "degree": 2}, "weighted Lasso, diabetes degree 2 (65-D)"),
}


def single_penalty_reference() -> str:
    """The best shared log10 λ on a 51-point grid: what tuning one penalty achieves."""
    problem = get("lasso", dataset="diabetes", degree=2)
    grid = np.linspace(-4.0, 1.0, 51)
    losses = problem.evaluate(np.repeat(grid[:, None], problem.dim, axis=1))
    best = int(np.argmin(losses))
    test = problem.test_loss(np.full(problem.dim, grid[best]))
    return (f"Best single shared penalty (51-point grid of log10 λ): log10 λ = {grid[best]:.1f}, CV "
            f"loss {losses[best]:.4f}, test loss {test:.4f}.")


def r5_verdict(runs: list[dict], budget: int) -> str:
    """R5's CMA-ES half: RDUCB's mean regret ≤ CMA-ES's, paired by seed (the paper half is in the notes)."""
    rducb = {r["seed"]: r["regret"][budget] for r in runs if r["method"] == "RDUCB" and budget in r["regret"]}
    cma = {r["seed"]: r["regret"][budget] for r in runs if r["method"] == "CMA-ES (bbopt)" and budget in r["regret"]}
    seeds = sorted(set(rducb) & set(cma))
    if not seeds:
        return ""
    ours, theirs = np.mean([rducb[s] for s in seeds]), np.mean([cma[s] for s in seeds])
    wins = sum(rducb[s] <= cma[s] for s in seeds)
    return (f"R5 ({len(seeds)} paired seeds): RDUCB mean regret {ours:.4g} vs CMA-ES {theirs:.4g}, RDUCB better on "
            f"{wins}/{len(seeds)} seeds: {'met' if ours <= theirs else 'not met'} (bar ≤ CMA-ES).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS))
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[50, 100],
                        help="evaluation counts with a regret column besides the budget")
    parser.add_argument("--cached", action="store_true",
                        help="build the table from benchmarks/runs/rducb only (finished and interrupted runs)")
    parser.add_argument("--turbo-candidates", type=int, default=0,
                        help="TuRBO's Thompson-sampling candidates; 0 keeps the default min(100·D, 5000)")
    args = parser.parse_args()
    overrides = {"TuRBO-1": {"n_candidates": args.turbo_candidates}} if args.turbo_candidates else {}
    threads = pin_threads(1)
    checkpoints = tuple(sorted({*args.checkpoints, args.budget}))
    for key in args.problems:
        spec, title = PROBLEMS[key]
        runs = run_grid(spec, args.methods, args.seeds, args.budget, checkpoints, args.jobs, overrides,
                        cached_only=args.cached)
        lasso = key == "lasso"
        body = table(header(checkpoints, with_test=lasso), summary_rows(runs, args.methods, args.budget, checkpoints))
        finals = {m: np.mean(v) for m in args.methods
                  if (v := [r["regret"][args.budget] for r in runs if r["method"] == m and args.budget in r["regret"]])}
        ranking = ", ".join(f"{m} {v:.4g}" for m, v in sorted(finals.items(), key=lambda kv: kv[1]))
        notes = (f"Seeds {args.seeds}; {args.budget} evaluations; threads pinned to {threads}; --jobs {args.jobs}. "
                 f"Every method at its defaults except {overrides or 'none'}. "
                 f"{'Loss' if lasso else 'Regret'} = best {'5-fold CV loss' if lasso else 'f − f*'} (lower is "
                 f"better). Ranking by mean at the budget: {ranking}.")
        if lasso:
            notes += " " + single_penalty_reference()
        notes += " " + r4_verdict(runs, checkpoints, additive=key in ("st50", "st100"))
        if key == "rosenbrock20":
            notes += " " + r5_verdict(runs, args.budget)
        append(f"R2 — {title}, {args.budget} evaluations", body, notes)


if __name__ == "__main__":
    main()
