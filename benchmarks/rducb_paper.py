"""R4 on the RDUCB paper's own settings, against BoTorch's default and the R1/R2 baselines.

Ziomek & Bou-Ammar, "Are Random Decompositions all we need in High Dimensional Bayesian
Optimisation?", ICML 2023; the settings are those of the authors' released configs
(huawei-noah/HEBO, ``RDUCB/config/synthetic_functions/*/rducb.yml``, read there):

- ``stybtang250``: Styblinski–Tang 250-D on [−4, 4]^250, 10 random points + 500
  iterations, observation noise variance 0.15 (``fn_noise_var``);
- ``rosenbrock20``: Rosenbrock 20-D on HPOlib's [−5, 10]^20, 10 + 1000, noise variance 0.15;
- ``hartmann6_20``: Hartmann-6 plus 14 inert variables (``Hartmann6Aug``, aug_dimension 14:
  20-D in all) on [0, 1]^20, 10 + 1000, noiseless. The configs permute the variables; every
  method here is invariant to that, so the active ones are the first six.

Regret = best noiseless f − f* over the points evaluated. ``--budget`` trims every problem's
budget (the full ones take hours per run for the GP methods on this machine): the table says
which budget ran.

    python benchmarks/rducb_paper.py [--problems stybtang250 rosenbrock20 hartmann6_20] [--seeds 0 1 2 3 4]
                                     [--budget N] [--jobs 1] [--methods ...]
"""

from __future__ import annotations

import argparse

import numpy as np
from _rducb_runs import DEFAULT_METHODS, METHODS, header, r4_verdict, run_grid, summary_rows

from _report import append, pin_threads, table

#: key -> (problem spec, title, the paper's budget: 10 random points + n_iter)
PROBLEMS = {
    "stybtang250": ({"name": "styblinski-tang", "dim": 250, "lower": -4.0, "upper": 4.0, "obs_noise_var": 0.15},
                    "Styblinski–Tang 250-D", 510),
    "rosenbrock20": ({"name": "rosenbrock", "dim": 20, "lower": -5.0, "upper": 10.0, "obs_noise_var": 0.15},
                     "Rosenbrock 20-D", 1010),
    "hartmann6_20": ({"name": "hartmann6", "dim": 20}, "Hartmann-6 in 20-D (14 inert variables)", 1010),
}
ADDITIVE = ("stybtang250",)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budget", type=int, default=0, help="evaluations per run; 0: the paper's (10 + n_iter)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS))
    parser.add_argument("--cached", action="store_true",
                        help="build the table from benchmarks/runs/rducb only (finished and interrupted runs)")
    args = parser.parse_args()
    threads = pin_threads(1)
    for key in args.problems:
        spec, title, paper_budget = PROBLEMS[key]
        budget = args.budget or paper_budget
        checkpoints = tuple(sorted({min(50, budget), min(100, budget), budget}))
        runs = run_grid(spec, args.methods, args.seeds, budget, checkpoints, args.jobs, cached_only=args.cached)
        body = table(header(checkpoints), summary_rows(runs, args.methods, budget, checkpoints))
        finals = {m: np.mean(v) for m in args.methods
                  if (v := [r["regret"][budget] for r in runs if r["method"] == m and budget in r["regret"]])}
        ranking = ", ".join(f"{m} {v:.4g}" for m, v in sorted(finals.items(), key=lambda kv: kv[1]))
        trimmed = "" if budget == paper_budget else f" (trimmed from the paper's {paper_budget})"
        notes = (f"Seeds {args.seeds}; {budget} evaluations{trimmed}; observation noise variance "
                 f"{spec.get('obs_noise_var', 0.0)}, regret on the noiseless f; threads pinned to {threads}; "
                 f"--jobs {args.jobs}. Every method at its defaults. Ranking by mean at the budget: {ranking}. "
                 f"{r4_verdict(runs, checkpoints, additive=key in ADDITIVE)}")
        append(f"R4 — RDUCB paper setting: {title}, {budget} evaluations", body, notes)


if __name__ == "__main__":
    main()
