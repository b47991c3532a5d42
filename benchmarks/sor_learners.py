"""S1 / S2: bandit-chosen SOR ω over a stream of shifted Poisson systems ("Learning to Relax").

For each seed (= an independent stream of T systems) every system is solved with every ω
of the grid by the problem's own solver (``SORSequenceProblem.cost_table``) and with
Young's ω* (oracle). Iteration counts are deterministic given (system, ω), so the learners
then run through ``bbopt.minimize`` on a problem that reads the same table — exactly what
live solves would return (checked live for ChebCB on the first seed). Rows: mean
iterations per system, mean ± sd over seeds; ratios are paired per seed.

50×50 (S2) cannot afford the full table on this shared 2-core box (~0.3–1 s per system
for 20 arms), so there: the full table on every 5th system picks the 3 best grid ω, which
(with ω = 1) are then solved on all T systems — the best fixed ω is the best of those on
all T; the instance-optimal grid row is over the subsample; the learners solve live.

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
    "50x50": {"id": "S2", "m": 50, "distribution": "rescaled", "solver": "redblack", "subsample": 5},
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
    if setting.get("subsample"):
        out, replay = baselines_subsampled(problem, T, setting["subsample"]), None
    else:
        costs = problem.cost_table(range(T))
        means = costs.mean(axis=0)
        out = {"omega_1": costs[:, 0].mean(), "inst_grid": costs.min(axis=1).mean(), "best_fixed": means.min(),
               "best_omega": problem.space.values[int(means.argmin())]}
        replay = TableProblem(problem, costs)
    out["young"] = problem.young_costs(range(T)).mean()
    out["table_s"] = time.perf_counter() - t0
    for name in LEARNERS:
        options = {"context_range": problem.context_range} if name in CONTEXTUAL else {}
        target = replay or get("sor-poisson", m=setting["m"], distribution=setting["distribution"], seed=seed,
                               solver=setting["solver"])
        res = minimize(target, name, T, seed=seed, options=options, progress=False)
        losses = res.history.losses()
        out[name], out[name + "_last"] = losses.mean(), losses[T // 2:].mean()
    if live_check and replay is not None:  # the real solver inside the loop gives the very same costs
        live = minimize(problem, "chebcb", T, seed=seed, options={"context_range": problem.context_range},
                        progress=False)
        out["live_equal"] = bool(np.array_equal(live.history.losses(), res.history.losses()))
    print(f"seed {seed}: baselines {out['table_s']:.0f} s, " + ", ".join(
        f"{k} {out[k]:.1f}" for k in ("omega_1", "best_fixed", "inst_grid", "young", *LEARNERS)), flush=True)
    return out


def baselines_subsampled(problem, T: int, every: int) -> dict:
    """ω = 1 and the best fixed ω on all T systems; the candidates for the latter (top 3) and the
    instance-optimal grid row from the full table on every ``every``-th system."""
    sub = problem.cost_table(range(0, T, every))
    top = [int(a) for a in np.argsort(sub.mean(axis=0))[:3]]
    full = problem.cost_table(range(T), arms=[0, *top]).mean(axis=0)
    best = 1 + int(full[1:].argmin())
    return {"omega_1": full[0], "best_fixed": full[best], "best_omega": problem.space.values[top[best - 1]],
            "inst_grid": sub.min(axis=1).mean(), "sub_best_omega": problem.space.values[top[0]]}


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
            ["instance-optimal (grid)", fmt([r["inst_grid"] for r in runs]),
             f"over every {setting['subsample']}th system" if setting.get("subsample") else ""],
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
             f"Baselines {np.mean([r['table_s'] for r in runs]):.0f} s per seed. ")
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
