"""S1 / S2 / S4: bandit-chosen SOR ω over streams of systems ("Learning to Relax"), anytime.

For each seed (= an independent stream of T systems) the cost of every ω of the grid on
every system is computed by the library's own kernels, many systems at once
(``_sor_tables``: the same iterates; a sample is re-solved by the problem's solver and the
agreement reported). Iteration counts are deterministic given (system, ω), so the learners
run through ``bbopt.minimize`` on a problem that reads the table — exactly what live solves
would return. Learners with Young's prior (``+young``) see the problem's ``context_source:
young`` context (ω̂ from a 6-step Lanczos estimate of the Jacobi radius) and pay its
matrix–vector products on every system (one matvec ≈ one SOR iteration).

Streams: S1 = 10×10 Poisson, paper shifts, lexicographic SOR; S2 = 50×50, rescaled shifts,
red–black SOR; diffusion = ``sor-diffusion`` (24×24, variable coefficient κ = exp(s·g),
contrast ≤ 100, red–black SOR), which nothing was tuned on before issue 14.

    python benchmarks/sor_learners.py --setting paper      # S1 table at T
    python benchmarks/sor_learners.py --setting 50x50      # S2 table + kernel time
    python benchmarks/sor_learners.py --anytime            # S4: ratios at T = 50 … 1000 on all three, PNG
    (--T-s2 400: S2's stream stops at T = 400, where the S4 bar is)
    (--seeds, --T to resize; --dry prints without appending to RESULTS.md)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _sor_tables import CACHE, check, stream_table  # noqa: E402

from bbopt import minimize  # noqa: E402
from bbopt.linsolve import RedBlackSplit, young_omega  # noqa: E402
from bbopt.problem import Problem  # noqa: E402
from bbopt.problems import get  # noqa: E402

from _report import append, pin_threads, table  # noqa: E402

SETTINGS = {
    "paper": {"id": "S1", "problem": "sor-poisson", "kw": {"m": 10, "distribution": "high", "solver": "sor"},
              "title": "10×10, high shifts, sor"},
    "paper-low": {"id": "S1 (low variance, extra)", "problem": "sor-poisson",
                  "kw": {"m": 10, "distribution": "low", "solver": "sor"}, "title": "10×10, low shifts, sor"},
    "50x50": {"id": "S2", "problem": "sor-poisson", "kw": {"m": 50, "distribution": "rescaled", "solver": "redblack"},
              "title": "50×50, rescaled shifts, redblack", "lazy": True},
    "diffusion": {"id": "diffusion", "problem": "sor-diffusion", "kw": {},
                  "title": "sor-diffusion 24×24, variable κ (contrast 100), redblack"},
}
ANYTIME = ("paper", "diffusion", "50x50")
CHECKPOINTS = (50, 100, 200, 400, 1000)
#: label -> (registered strategy, options)
LEARNERS = {"exp3": ("exp3", {}), "tsallis-inf": ("tsallis-inf", {}), "igw": ("igw", {}),
            "tsallis-inf-cb": ("tsallis-inf-cb", {}), "chebcb": ("chebcb", {}),
            "chebcb+young": ("chebcb", {"prior": "young"})}
CONTEXTUAL = {"tsallis-inf-cb", "chebcb"}


class TableProblem(Problem):
    """The same stream, each (system, arm) cost read from a table ``(T, d)`` (plus ``extra`` per system)."""

    def __init__(self, problem, costs, contexts=None, extra=0.0):
        self.space, self.costs, self.problem = problem.space, costs, problem
        self.contexts, self.extra = contexts, extra

    def context(self, t):
        return self.problem.context(t) if self.contexts is None else float(self.contexts[t])

    def evaluate(self, batch):
        return self.costs[batch.round, np.asarray(batch.x)].astype(float) + self.extra


class LazyCosts:
    """Costs ``(T, d)`` solved on first request by the problem's own solver (S2: a full 50×50 table
    is dear on a shared box); ``table`` holds −1 where nothing was asked."""

    def __init__(self, problem, T: int):
        self.problem, self.table, self.systems = problem, np.full((T, problem.space.n_arms), -1, dtype=np.int64), {}

    def get(self, t: int, arms) -> np.ndarray:
        system = self.systems.setdefault(t, self.problem.stream.instance(t))
        for a in np.atleast_1d(arms):
            if self.table[t, a] < 0:
                self.table[t, a] = self.problem.solve(system, self.problem.space.values[int(a)])[0].iterations
        return self.table[t, np.asarray(arms)]

    def baselines(self, every: int = 10, top: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """``(cand (T, top), inst (T,))``: the ``top`` arms best on every ``every``-th system (all arms
        solved there), solved on all systems; per system the minimum over the grid arms next to
        Young's ω* (the nearest and its two neighbours: costs are unimodal in ω) and all solved arms."""
        T, d = self.table.shape
        for t in range(0, T, every):
            self.get(t, np.arange(d))
        arms = np.argsort(self.table[::every].mean(axis=0))[:top]
        grid = np.asarray(self.problem.space.values)
        for t in range(T):
            self.get(t, arms)
            near = int(np.abs(grid - young_omega(beta=self.problem.stream.instance(t).jacobi_radius)).argmin())
            self.get(t, np.arange(max(near - 1, 0), min(near + 2, d)))
        solved = np.where(self.table < 0, np.iinfo(np.int64).max, self.table)
        return self.table[:, arms], solved.min(axis=1)


class LazyTableProblem(TableProblem):
    def evaluate(self, batch):
        return self.costs.get(batch.round, np.asarray(batch.x)).astype(float) + self.extra


def make_problem(setting: dict, seed: int, **options):
    return get(setting["problem"], seed=seed, **setting["kw"], **options)


def run_seed(setting: dict, seed: int, T: int, learners: dict, young_steps: int = 6) -> dict:
    """Per-system costs ``(T,)`` of every learner, the table's baselines, and the agreement check."""
    problem = make_problem(setting, seed)
    t0 = time.perf_counter()
    if setting.get("lazy"):
        costs, replay_cls, checked = LazyCosts(problem, T), LazyTableProblem, (0, 0)
    else:
        costs, replay_cls = stream_table(problem, T, f"{setting['problem']}-s{seed}"), TableProblem
        checked = check(problem, costs, 20, seed)
    out = {"table_s": time.perf_counter() - t0, "check": checked}
    key = hashlib.sha1(repr((setting["id"], seed, T, young_steps, sorted(learners.items()))).encode()).hexdigest()[:10]
    cached = CACHE / f"learners-{setting['problem']}-s{seed}-T{T}-{key}.npz"  # --only runs fill it, in parallel
    if cached.exists():
        out.update(dict(np.load(cached)))
        return _baselines(out, costs, cached)
    young = None
    for label, (name, options) in learners.items():
        if options.get("prior") == "young":
            if young is None:
                yp = make_problem(setting, seed, context_source="young", young_steps=young_steps)
                young = (np.array([yp.context(t) for t in range(T)]), yp.young_steps, yp.context_range)
            replay = replay_cls(problem, costs, young[0], young[1])
            options = {"context_range": young[2], **options}
        else:
            replay = replay_cls(problem, costs)
            if name in CONTEXTUAL:
                options = {"context_range": problem.context_range, **options}
        res = minimize(replay, name, T, seed=seed, options=options, progress=False)
        out[label] = res.history.losses()
    np.savez(cached, **{label: out[label] for label in learners})
    out = _baselines(out, costs, cached)
    print(f"{setting['id']} seed {seed}: table {out['table_s']:.0f} s (check {out['check'][0]}/{out['check'][1]}), "
          f"best fixed {out['cand'].mean(axis=0).min():.1f}, " + ", ".join(f"{k} {out[k].mean():.1f}" for k in learners),
          flush=True)
    return out


def _baselines(out: dict, costs, cached: Path) -> dict:
    """``cand``: columns of the arms that may be the best fixed one; ``inst``: instance-optimal cost per system."""
    if isinstance(costs, LazyCosts):
        path = cached.with_name("baselines-" + cached.name)
        if not path.exists():
            np.savez(path, *costs.baselines())
        saved = np.load(path)
        out["cand"], out["inst"], out["lazy"] = saved["arr_0"], saved["arr_1"], True
    else:
        out["costs"], out["cand"], out["inst"] = costs, costs, costs.min(axis=1)
    return out


def prefix_ratios(run: dict, label: str, T: int) -> tuple[float, float]:
    """Cumulative cost of ``label`` over systems < T ÷ the best fixed ω in hindsight on them, and
    ÷ the instance-optimal grid ω on them."""
    total = run[label][:T].sum()
    return total / run["cand"][:T].sum(axis=0).min(), total / run["inst"][:T].sum()


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


def baseline_rows(setting: dict, runs: list[dict], T: int) -> list[list]:
    grid = runs[0]["grid"]
    best = [r["costs"][:T].mean(axis=0) for r in runs]
    return [["ω = 1 (Gauss–Seidel)", fmt([r["costs"][:T, 0].mean() for r in runs]), ""],
            ["best fixed ω in hindsight", fmt([b.min() for b in best]),
             "ω = " + ", ".join(f"{grid[int(b.argmin())]:.2f}" for b in best)],
            ["instance-optimal (grid)", fmt([r["costs"][:T].min(axis=1).mean() for r in runs]), ""]]


def table_notes(runs: list[dict], T: int) -> str:
    agree = sum(r["check"][0] for r in runs), sum(r["check"][1] for r in runs)
    return (f"T = {T} systems per seed, {len(runs)} seeds (stream seeds 0..{len(runs) - 1}; learner seed = stream "
            f"seed). Cost tables by `_sor_tables` ({np.mean([r['table_s'] for r in runs]):.0f} s per seed, 0 if "
            f"cached); re-solved by the problem's own solver: {agree[0]}/{agree[1]} sampled (system, ω) counts equal. ")


def report(setting: dict, runs: list[dict], T: int, learners: dict, kernels: dict | None, dry: bool) -> None:
    rows = baseline_rows(setting, runs, T)
    for label in learners:
        to_best = [r[label][:T].mean() / r["costs"][:T].mean(axis=0).min() for r in runs]
        to_one = [r[label][:T].mean() / r["costs"][:T, 0].mean() for r in runs]
        rows.append([label, fmt([r[label][:T].mean() for r in runs]),
                     f"{fmt(to_best, 3)}× best fixed (worst seed {max(to_best):.3f}); {fmt(to_one, 3)}× ω=1; "
                     f"2nd half {fmt([r[label][T // 2:T].mean() for r in runs])}"])
    body = table(["method", "mean iterations per system", "notes"], rows)
    notes = table_notes(runs, T)
    if "chebcb" in learners:
        cheb = max(r["chebcb"][:T].mean() / r["costs"][:T].mean(axis=0).min() for r in runs)
        worst_one = max(r[n][:T].mean() / r["costs"][:T, 0].mean() for r in runs for n in learners)
        notes += (f"Bar: ChebCB ≤ 0.85× best fixed ω — worst seed {cheb:.3f}: {'met' if cheb <= 0.85 else 'NOT met'}; "
                  f"every learner ≤ 0.3× ω = 1 — worst learner/seed {worst_one:.3f}: "
                  f"{'met' if worst_one <= 0.3 else 'NOT met'}. ")
    if kernels:
        rb = kernels["red-black"][0]
        notes += ("\n\nKernel time per iteration, 50×50, c = 0.01, ω = 1.8 (best of 5): " + "; ".join(
            f"{k} {v[0]:.1f} µs ({v[1]} iterations)" for k, v in kernels.items())
            + f". Bar: one red–black iteration ≤ 150 µs: {'met' if rb <= 150 else 'NOT met'} ({rb:.1f} µs).")
    if dry:
        print(body, notes, sep="\n\n")
        return
    append(f"{setting['id']} — SOR ω bandits, {setting['title']}", body, notes)


def anytime(all_runs: dict, learners: dict, png: Path, dry: bool) -> None:
    """S4: one row per (stream, learner): cumulative cost ÷ best fixed (÷ instance-optimal) at each checkpoint."""
    rows, verdict = [], []
    for key, runs in all_runs.items():
        T_max = runs[0]["inst"].shape[0]
        checkpoints = [c for c in CHECKPOINTS if c <= T_max]
        for label in learners:
            cells = []
            for c in checkpoints:
                fixed, inst = zip(*(prefix_ratios(r, label, c) for r in runs))
                cells.append(f"{np.mean(fixed):.2f} ({np.mean(inst):.2f})")
            rows.append([SETTINGS[key]["id"], label, *cells, *["—"] * (len(CHECKPOINTS) - len(cells))])
        contextual = [lab for lab in learners if learners[lab][0] in CONTEXTUAL]
        at400 = {lab: np.mean([prefix_ratios(r, lab, min(400, T_max))[0] for r in runs]) for lab in contextual}
        best = min(at400, key=at400.get)
        at50 = {lab: max(prefix_ratios(r, lab, 50)[0] for r in runs) for lab in learners}
        worst = max(at50, key=at50.get)
        verdict.append(f"{SETTINGS[key]['id']}: best contextual at T = 400 {best} {at400[best]:.3f}× "
                       f"({'≤' if at400[best] <= 1.15 else '>'} 1.15); worst learner/seed at T = 50 {worst} "
                       f"{at50[worst]:.2f}× ({'≤' if at50[worst] <= 2 else '>'} 2)")
    header = ["stream", "learner", *[f"T = {c}" for c in CHECKPOINTS]]
    body = table(header, rows)
    notes = ("Cell: cumulative iterations of the learner over the first T systems ÷ the best fixed ω in hindsight "
             "over the same T systems (÷ the instance-optimal grid ω in parentheses), mean over the stream's seeds. "
             "Learners with `+young` pay the 6 Lanczos matvecs of their context on every system. "
             "Bar S4 (best contextual ≤ 1.15× best fixed at T = 400 on every stream; no learner > 2× at T = 50): "
             + "; ".join(verdict) + ". Cost tables (`_sor_tables`, the library's kernels on stacked systems; "
             "sampled (system, ω) counts re-solved by the problem's own solver and equal / checked): " + "; ".join(
                 f"{SETTINGS[k]['id']} T = {r[0]['inst'].shape[0]}, {len(r)} seeds, {sum(x['check'][0] for x in r)}/"
                 f"{sum(x['check'][1] for x in r)}" for k, r in all_runs.items()) + ". " + " ".join(
                 f"{SETTINGS[k]['id']}: no table; every cost the learners asked was solved live by the problem's own "
                 "solver; best fixed ω = the best on all systems of the 3 arms best on every 10th system (all 20 arms "
                 "solved there); instance-optimal = the minimum over the grid arms next to Young's ω* and every arm "
                 "solved." for k, r in all_runs.items() if r[0].get("lazy")) + f" Plot: `benchmarks/{png.name}`.")
    plot(all_runs, learners, png)
    if dry:
        print(body, notes, sep="\n\n")
        return
    append("S4 — anytime SOR ω learners: cumulative cost ÷ best fixed ω at T = 50 … 1000, three streams", body, notes)


def plot(all_runs: dict, learners: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(all_runs), figsize=(5.2 * len(all_runs), 4.2))
    for ax, (key, runs) in zip(np.atleast_1d(axes), all_runs.items()):
        T = runs[0]["inst"].shape[0]
        t = np.arange(1, T + 1)
        for label in learners:
            ax.plot(t, np.mean([np.cumsum(r[label]) for r in runs], axis=0), label=label, lw=1.2)
        best = np.mean([np.cumsum(r["cand"], axis=0).min(axis=1) for r in runs], axis=0)  # hindsight on each prefix
        ax.plot(t, best, "k-", lw=2, label="best fixed ω in hindsight")
        ax.plot(t, np.mean([np.cumsum(r["inst"]) for r in runs], axis=0), "k--", label="instance-optimal")
        ax.set(xscale="log", yscale="log", xlabel="systems T", ylabel="cumulative iterations (mean over seeds)",
               title=SETTINGS[key]["id"] + ": " + SETTINGS[key]["title"].split(",")[0])
        ax.title.set_fontsize(9)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="paper")
    parser.add_argument("--anytime", action="store_true", help="S4: all three streams, ratios at T = 50 … 1000, PNG")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--T-s2", type=int, default=None, help="--anytime: a shorter stream for S2 (50×50 tables are dear)")
    parser.add_argument("--seeds-s2", default=None, help="--anytime: S2's stream seeds, comma-separated (default: as --seeds)")
    parser.add_argument("--dry", action="store_true", help="print the table, do not append to RESULTS.md")
    parser.add_argument("--only", choices=ANYTIME, help="--anytime: run (and cache) one stream's learners, no report")
    args = parser.parse_args()
    pin_threads(1)
    learners = dict(LEARNERS)
    keys = ((args.only,) if args.only else ANYTIME) if args.anytime else (args.setting,)
    all_runs = {}
    for key in keys:
        setting = SETTINGS[key]
        T = args.T_s2 if (args.anytime and key == "50x50" and args.T_s2) else args.T
        seeds = range(args.seeds)
        if args.anytime and key == "50x50" and args.seeds_s2:
            seeds = [int(s) for s in args.seeds_s2.split(",")]
        runs = [run_seed(setting, s, T, learners) for s in seeds]
        grid = make_problem(setting, 0).space.values
        for r in runs:
            r["grid"] = grid
        all_runs[key] = runs
    if args.only:
        return
    if args.anytime:
        anytime(all_runs, learners, Path(__file__).resolve().parent / "sor_anytime.png", args.dry)
    else:
        kernels = kernel_times(50) if args.setting == "50x50" else None
        report(SETTINGS[args.setting], all_runs[args.setting], args.T, learners, kernels, args.dry)


if __name__ == "__main__":
    main()
