"""R1: Styblinski–Tang 20-D on [−4, 4]^20, 200 evaluations, 5 seeds (the spread is large).

RDUCB against TuRBO-1, full-dimensional GP-UCB, bbopt's CMA-ES, nevergrad's NGOpt and
random search, every method with its registered defaults. Bar (BENCHMARKS.md): RDUCB's
simple regret ≤ 50 and ≤ 0.5× every other method's.

    python benchmarks/rducb_r1.py [--seeds 0 1 2 3 4] [--budget 200] [--jobs 1] [--methods ...]
"""

from __future__ import annotations

import argparse

from _rducb_runs import DEFAULT_METHODS, METHODS, header, r4_verdict, run_grid, summary_rows

from _report import append, pin_threads, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS))
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[50, 100],
                        help="evaluation counts with a regret column besides the budget")
    parser.add_argument("--cached", action="store_true",
                        help="build the table from benchmarks/runs/rducb only (finished and interrupted runs)")
    args = parser.parse_args()
    threads = pin_threads(1)
    checkpoints = tuple(sorted({*args.checkpoints, args.budget}))
    spec = {"name": "styblinski-tang", "dim": 20, "lower": -4.0, "upper": 4.0}
    runs = run_grid(spec, args.methods, args.seeds, args.budget, checkpoints, args.jobs, cached_only=args.cached)
    body = table(header(checkpoints), summary_rows(runs, args.methods, args.budget, checkpoints))
    done = [r for r in runs if args.budget in r["regret"]]
    rducb = [r["regret"][args.budget] for r in done if r["method"] == "RDUCB"]
    others = {m: [r["regret"][args.budget] for r in done if r["method"] == m]
              for m in args.methods if not m.startswith("RDUCB")}
    verdict = ""
    if rducb:
        mean = sum(rducb) / len(rducb)
        worst_ratio = max((mean / (sum(v) / len(v)) for v in others.values() if v), default=0.0)
        verdict = (f"RDUCB mean regret {mean:.1f} (bar ≤ 50: {'met' if mean <= 50 else 'not met'}); largest ratio of "
                   f"RDUCB's mean to another method's mean {worst_ratio:.3f} (bar ≤ 0.5: "
                   f"{'met' if worst_ratio <= 0.5 else 'not met'}).")
    notes = (f"Seeds {args.seeds}; torch/BLAS threads pinned to {threads} (the GP strategies also cap BLAS "
             f"at 1 thread while proposing); --jobs {args.jobs}. Regret = best f − f* (f* = −39.166·20). "
             f"nevergrad NGOpt picks its own inner optimizer for this budget and dimension. {verdict} "
             f"{r4_verdict(runs, checkpoints, additive=True)}")
    append("R1 — RDUCB on Styblinski–Tang 20-D, 200 evaluations", body, notes)


if __name__ == "__main__":
    main()
