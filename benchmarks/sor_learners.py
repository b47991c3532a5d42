"""S1 / S2: bandit-chosen SOR ω over a stream of shifted Poisson systems ("Learning to Relax").

For each seed (= an independent stream of T systems) every system is solved with every ω
of the grid by the problem's own solver (``SORSequenceProblem.cost_table``) and with
Young's ω* (oracle). Iteration counts are deterministic given (system, ω), so the learners
then run through ``bbopt.minimize`` on a problem that reads the same table — exactly what
live solves would return (checked live for ChebCB on the first seed). Rows: mean
iterations per system, mean ± sd over seeds; ratios are paired per seed.

    python benchmarks/sor_learners.py --setting paper   # S1: 10×10, lexicographic SOR
    python benchmarks/sor_learners.py --setting 50x50   # S2: 50×50, red–black SOR + kernel time
    (--seeds, --T to resize; --dry prints without appending to RESULTS.md)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from bbopt import minimize  # noqa: E402
from bbopt.linsolve import RedBlackSplit  # noqa: E402
from bbopt.problem import Problem  # noqa: E402
from bbopt.problems import get  # noqa: E402

from _report import append, pin_threads, table  # noqa: E402

SETTINGS = {
    "paper": {"id": "S1", "m": 10, "distribution": "high", "solver": "sor"},
    "paper-low": {"id": "S1 (low variance, extra)", "m": 10, "distribution": "low", "solver": "sor"},
    "50x50": {"id": "S2", "m": 50, "distribution": "rescaled", "solver": "redblack"},
}
LEARNERS = ["exp3", "tsallis-inf", "igw", "tsallis-inf-cb", "chebcb"]
CONTEXTUAL = {"tsallis-inf-cb", "chebcb"}


class TableProblem(Problem):
    """The same stream, with each (system, arm) cost read from a precomputed table ``(T, d)``."""

    def __init__(self, problem, costs):
        self.space, self.costs, self.problem = problem.space, costs, problem

    def context(self, t):
        return self.problem.context(t)

    def evaluate(self, batch):
        return self.costs[batch.round, np.asarray(batch.x)].astype(float)


def run_seed(setting: dict, seed: int, T: int, live_check: bool) -> dict:
    problem = get("sor-poisson", m=setting["m"], distribution=setting["distribution"], seed=seed,
                  solver=setting["solver"])
    t0 = time.perf_counter()
    costs = problem.cost_table(range(T))
    young = problem.young_costs(range(T))
    out = {"table_s": time.perf_counter() - t0, "omega_1": costs[:, 0].mean(), "young": young.mean(),
           "inst_grid": costs.min(axis=1).mean()}
    means = costs.mean(axis=0)
    out["best_fixed"], out["best_omega"] = means.min(), problem.space.values[int(means.argmin())]
    replay = TableProblem(problem, costs)
    for name in LEARNERS:
        options = {"context_range": problem.context_range} if name in CONTEXTUAL else {}
        res = minimize(replay, name, T, seed=seed, options=options, progress=False)
        losses = res.history.losses()
        out[name], out[name + "_last"] = losses.mean(), losses[T // 2:].mean()
    if live_check:  # the real solver inside the loop gives the very same costs
        live = minimize(problem, "chebcb", T, seed=seed, options={"context_range": problem.context_range},
                        progress=False)
        out["live_equal"] = bool(np.array_equal(live.history.losses(), res.history.losses()))
    print(f"seed {seed}: table {out['table_s']:.0f} s, " + ", ".join(
        f"{k} {out[k]:.1f}" for k in ("omega_1", "best_fixed", "inst_grid", "young", *LEARNERS)), flush=True)
    return out


def kernel_times(m: int, repeats: int = 5) -> dict:
    """µs per iteration at c = 0.01, ω = 1.8 (best of ``repeats``): red–black vs lexicographic kernels."""
    from bbopt.linsolve import Stencil5, redblack_sor, sor

    st = Stencil5((m, m), 4.01, 1.0)
    A, b = st.matrix(), np.random.default_rng(0).standard_normal(m * m)
    split = RedBlackSplit.from_stencil(st)
    out = {}
    for label, fn in (("red-black", lambda: redblack_sor(split, b, 1.8)),
                      ("lexicographic, pyamg sweep", lambda: sor(A, b, 1.8, kernel="pyamg")),
                      ("lexicographic, sparse triangular solve", lambda: sor(A, b, 1.8, kernel="triangular"))):
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = fn()
            best = min(best, (time.perf_counter() - t0) / res.iterations)
        out[label] = (best * 1e6, res.iterations)
    return out


def fmt(values, digits=1):
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1) if values.size > 1 else 0:.{digits}f}"


def report(setting: dict, runs: list[dict], T: int, kernels: dict | None, dry: bool) -> None:
    rows = [["ω = 1 (Gauss–Seidel)", fmt([r["omega_1"] for r in runs]), ""],
            ["best fixed ω in hindsight", fmt([r["best_fixed"] for r in runs]),
             "ω = " + ", ".join(f"{r['best_omega']:.2f}" for r in runs)],
            ["instance-optimal (grid)", fmt([r["inst_grid"] for r in runs]), ""],
            ["instance-optimal (Young's ω*)", fmt([r["young"] for r in runs]), "oracle, needs eigenvalues"]]
    for name in LEARNERS:
        to_best = [r[name] / r["best_fixed"] for r in runs]
        to_one = [r[name] / r["omega_1"] for r in runs]
        rows.append([name, fmt([r[name] for r in runs]),
                     f"{fmt(to_best, 3)}× best fixed (worst seed {max(to_best):.3f}); {fmt(to_one, 3)}× ω=1; "
                     f"2nd half {fmt([r[name + '_last'] for r in runs])}"])
    body = table(["method", "mean iterations per system", "notes"], rows)
    cheb = max(r["chebcb"] / r["best_fixed"] for r in runs)
    worst_one = max(r[n] / r["omega_1"] for r in runs for n in LEARNERS)
    notes = (f"T = {T} systems per seed, {len(runs)} seeds (stream seeds 0..{len(runs) - 1}; learner seed = stream seed). "
             f"Bar: ChebCB ≤ 0.85× best fixed ω — worst seed {cheb:.3f}: {'met' if cheb <= 0.85 else 'NOT met'}; "
             f"every learner ≤ 0.3× ω = 1 — worst learner/seed {worst_one:.3f}: "
             f"{'met' if worst_one <= 0.3 else 'NOT met'}. "
             f"Table build {np.mean([r['table_s'] for r in runs]):.0f} s per seed. ")
    if "live_equal" in runs[0]:
        notes += f"Live ChebCB run through SORSequenceProblem identical to the table replay: {runs[0]['live_equal']}. "
    if kernels:
        rb = kernels["red-black"][0]
        notes += ("\n\nKernel time per iteration, 50×50, c = 0.01, ω = 1.8 (best of 5): " + "; ".join(
            f"{k} {v[0]:.1f} µs ({v[1]} iterations)" for k, v in kernels.items())
            + f". Bar: one red–black iteration ≤ 150 µs: {'met' if rb <= 150 else 'NOT met'} ({rb:.1f} µs).")
    if dry:
        print(body, notes, sep="\n\n")
        return
    append(f"{setting['id']} — SOR ω bandits, {setting['m']}×{setting['m']}, {setting['distribution']} shifts, "
           f"{setting['solver']}", body, notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="paper")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--dry", action="store_true", help="print the table, do not append to RESULTS.md")
    args = parser.parse_args()
    pin_threads(1)
    setting = SETTINGS[args.setting]
    runs = [run_seed(setting, s, args.T, live_check=(s == 0)) for s in range(args.seeds)]
    kernels = kernel_times(50) if args.setting == "50x50" else None
    report(setting, runs, args.T, kernels, args.dry)


if __name__ == "__main__":
    main()
