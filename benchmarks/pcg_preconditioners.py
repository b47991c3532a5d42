"""S5: the SOR-ω learners choosing CG's preconditioner per system (a second solver parameter).

Stream: ``pcg-preconditioner`` — implicit variable-coefficient diffusion steps A = I + τK
(κ a random smooth field per system, contrast 100), τ = Δt/h² log-uniform in [10⁻², 10³],
context log10 τ. Arms: plain CG, Jacobi-PCG, SSOR(1.5)-PCG. Cost = work: CG iterations ×
(1 + the preconditioner's matvecs per application), deterministic (wall time on this shared
box is mostly preemption noise). Every system is solved with every arm by the problem's own
solver (the table), then the learners replay the table through ``bbopt.minimize``.

    python benchmarks/pcg_preconditioners.py --seeds 2 --T 1000
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from _sor_tables import CACHE  # noqa: E402
from sor_learners import TableProblem, fmt  # noqa: E402

from bbopt import minimize  # noqa: E402
from bbopt.problems import get  # noqa: E402

from _report import append, pin_threads, table  # noqa: E402

LEARNERS = {"exp3": {}, "tsallis-inf": {}, "igw": {}, "tsallis-inf-cb": None, "chebcb": None}


def run_seed(seed: int, T: int, m: int) -> dict:
    problem = get("pcg-preconditioner", m=m, seed=seed)
    t0 = time.perf_counter()
    path = CACHE / f"pcg-preconditioner-s{seed}-m{m}-T{T}.npy"  # the table does not depend on the learners
    costs = np.load(path) if path.exists() else problem.cost_table(range(T))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, costs)
    out = {"costs": costs, "table_s": time.perf_counter() - t0, "arms": problem.space.values}
    for name, options in LEARNERS.items():
        options = {"context_range": problem.context_range} if options is None else options
        res = minimize(TableProblem(problem, costs), name, T, seed=seed, options=options, progress=False)
        out[name] = res.history.losses()
    print(f"seed {seed}: table {out['table_s']:.0f} s; fixed " + ", ".join(
        f"{a} {c:.1f}" for a, c in zip(out["arms"], costs.mean(axis=0))) + "; " + ", ".join(
        f"{n} {out[n].mean():.1f}" for n in LEARNERS), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--m", type=int, default=20)
    parser.add_argument("--dry", action="store_true")
    args = parser.parse_args()
    pin_threads(1)
    runs = [run_seed(s, args.T, args.m) for s in range(args.seeds)]
    arms = runs[0]["arms"]
    rows = [[f"fixed: {a}", fmt([r["costs"][:, i].mean() for r in runs]), ""] for i, a in enumerate(arms)]
    rows.append(["instance-optimal", fmt([r["costs"].min(axis=1).mean() for r in runs]), ""])
    ratios = {}
    for name in LEARNERS:
        ratios[name] = [r[name].mean() / r["costs"].mean(axis=0).min() for r in runs]
        rows.append([name, fmt([r[name].mean() for r in runs]),
                     f"{fmt(ratios[name], 3)}× best fixed (worst seed {max(ratios[name]):.3f}); at T = 400: "
                     f"{np.mean([r[name][:400].sum() / r['costs'][:400].sum(axis=0).min() for r in runs]):.3f}×"])
    best = min(ratios, key=lambda n: max(ratios[n]))
    body = table(["method", "mean work per system (fine-grid matvecs)", "notes"], rows)
    notes = (f"T = {args.T} systems per seed, {args.seeds} seeds, {args.m}×{args.m} grid; best fixed choice in "
             f"hindsight: " + ", ".join(arms[int(r['costs'].mean(axis=0).argmin())] for r in runs)
             + f"; table {np.mean([r['table_s'] for r in runs]):.0f} s per seed. Bar S5 (best learner ≤ best fixed "
             f"in hindsight at T = {args.T}): {best} worst seed {max(ratios[best]):.3f}× — "
             f"{'met' if max(ratios[best]) <= 1 else 'NOT met'}.")
    if args.dry:
        print(body, notes, sep="\n\n")
        return
    append("S5 — CG preconditioner chosen per system by the bandits (implicit diffusion, work cost)", body, notes)


if __name__ == "__main__":
    main()
