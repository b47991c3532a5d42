"""Z6 (ZO-Bench): every ZO estimator and backprop at equal forward-equivalent budgets, one command.

Workloads: ``digits`` (Z4: the load_digits MLP 64-64-10 from scratch, ``zo-digits-mlp``) and
``minilm`` (Z5: the packaged MiniLM fine-tuned on few-shot tweets, full parameters,
``zo-minilm-tweets``). FE = one forward of one mini-batch (backprop step = 3 FE). Protocol, the
same for every method:
1. tuning: a ``--grid``-point lr grid per method (``LRS``, log-spaced), seed 0, ``--tune-frac`` of
   the budget, chosen by accuracy on the dev/val split at the end (ties: the lower lr);
2. the chosen lr on seeds 1 … ``--seeds`` (fresh split seed and optimizer seed) at the full budget:
   test accuracy at FE checkpoints.
Per method: final test accuracy (mean ± std), the paired difference to MeZO at MeZO's budget, the
FE at which the seed-mean test curve first reaches MeZO's final accuracy (and ÷ MeZO's budget),
Z1 (whole-process peak ÷ inference, fresh processes, :mod:`benchmarks.zo_memory`) and Z2 (one
step's wall time ÷ one forward's, and ÷ (forward × FE per step), interleaved, median). One PNG of
test accuracy vs FE per workload (``benchmarks/zo_bench_<workload>.png``). Runs are cached
(``--cache``) so an interrupted benchmark resumes.

    python benchmarks/zo_bench.py --workload digits [--seeds 3] [--grid 3] [--methods ...]
    python benchmarks/zo_bench.py --workload minilm
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bbopt import make_optimizer, minimize  # noqa: E402
from bbopt.problems import get  # noqa: E402
from benchmarks._report import append, pin_threads, table  # noqa: E402
from benchmarks.zo_digits import Curve, backprop, cached  # noqa: E402

#: workload -> problem name, problem options, budget (FE), checkpoint spacing (FE), dev metric, Z1 model
WORKLOADS = {
    "digits": ("zo-digits-mlp", {}, 10_000, 500, "val", "mlp"),
    "minilm": ("zo-minilm-tweets", {"shots": 16, "batch_size": 16, "n_test": 200}, 240, 40, "dev", "minilm"),
}
#: method -> optimizer name (None: backprop), fixed options, problem options
METHODS = {
    "mezo": ("mezo", {"eps": 1e-3}, {}),
    "forward": ("forward-gradient", {}, {"jvp": "forward_ad"}),
    "ulr": ("likelihood-ratio", {"q": 8, "eps": 0.1}, {}),
    "cge-sparse": ("cge", {"eps": 5e-3, "density": 0.1, "layer_density": "grasp", "mask_every": 10}, {}),
    "fzoo": ("fzoo", {"q": 8}, {}),
    "hizoo": ("hizoo", {"hessian_smooth": 1e-6}, {}),
    "lozo": ("lozo", {}, {}),
    "lozo-m": ("lozo", {"rule": "momentum"}, {}),
    "subzero": ("subzero", {}, {}),
    "bp-sgd": (None, {"optimizer": "sgd"}, {}),
    "bp-adam": (None, {"optimizer": "adam"}, {}),
}
#: workload -> method -> lr grid centre (the grid is centre × 10^[-0.5 … 0.5] for 3 points)
LRS = {
    "digits": {"mezo": 3e-3, "forward": 3e-3, "ulr": 0.1, "cge-sparse": 3.0, "fzoo": 1e-4, "hizoo": 3e-3,
               "lozo": 3e-3, "lozo-m": 1e-3, "subzero": 3e-3, "bp-sgd": 1.0, "bp-adam": 3e-3},
    "minilm": {"mezo": 1e-4, "fzoo": 3e-6, "hizoo": 1e-4, "lozo": 1e-4, "lozo-m": 3e-5, "subzero": 1e-4,
               "bp-sgd": 1e-2, "bp-adam": 1e-4},
}
#: per workload, methods left out and why (stated under the table)
SKIPPED = {"minilm": {"ulr": "the anchor objective calls the model twice per forward (ULR needs one call)",
                      "cge-sparse": "coordinate-wise: ~10⁶ FE per step on 22.6M weights",
                      "forward": "jvp through MiniLM: +P tangents and ~10× a MeZO step on this CPU"}}
FE_PER_STEP = {"bp-sgd": 3, "bp-adam": 3}


def grid(centre: float, points: int) -> list[float]:
    return [float(f"{centre * 10 ** e:.3g}") for e in np.linspace(-0.5, 0.5, points)] if points > 1 else [centre]


def build(workload: str, method: str, seed: int):
    problem_name, options, _, _, _, _ = WORKLOADS[workload]
    return get(problem_name, seed=seed, **options, **METHODS[method][2])


def run(workload: str, method: str, lr: float, seed: int, budget: int) -> list[dict]:
    _, _, _, spacing, metric, _ = WORKLOADS[workload]
    name, options, _ = METHODS[method]
    problem = build(workload, method, seed)
    curve = Curve(problem, budget, points=range(spacing, budget + 1, spacing), metric=metric)
    if name is None:
        backprop(problem, lr, budget, curve, options["optimizer"])
    else:
        minimize(problem, name, budget, seed=seed, options={**options, "lr": lr}, callbacks=[curve], progress=False)
        curve.at(budget)
    return curve.rows


def step_ratio(workload: str, method: str, lr: float, reps: int = 7) -> tuple[float, int]:
    """Median (step wall time ÷ forward wall time), interleaved, and the step's FE; seed 0's batch 0."""
    name, options, _ = METHODS[method]
    problem = build(workload, method, 0)
    data = problem.batch(0)

    def forward() -> None:
        with torch.no_grad():
            problem.loss(problem.model, data).mean()

    if name is None:
        opt = (torch.optim.Adam if options["optimizer"] == "adam" else torch.optim.SGD)(problem.space.tensors, lr=lr)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with torch.enable_grad():
                problem.loss(problem.model, data).mean().backward()
            opt.step()
        fe = 3
    else:
        zo = make_optimizer(name, problem.space, seed=0, **options, lr=lr)
        fe = zo.fe_per_step

        def step() -> None:
            batch = zo.ask()
            zo.tell(batch, problem.evaluate(batch))
    ratios = []
    for k in range(reps + 1):
        t0 = time.perf_counter()
        forward()
        t1 = time.perf_counter()
        step()
        t2 = time.perf_counter()
        if k:  # the first round warms caches up
            ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(ratios), fe


def memory_ratio(model: str, method: str, seeds: int = 2) -> float:
    """Z1 of ``method`` at its defaults (NaN for CGE, which Z1 does not cover)."""
    from benchmarks.zo_memory import run as fresh

    if method == "cge-sparse":
        return float("nan")
    batch = 16 if model == "minilm" else 64
    if model not in _INFERENCE:
        _INFERENCE[model] = float(np.mean([fresh("inference", model, batch, s)["peak_mb"] for s in range(seeds)]))
    mem_name = {"forward": "forward-grad"}.get(method, method)
    return float(np.mean([fresh(mem_name, model, batch, s)["peak_mb"] for s in range(seeds)]) / _INFERENCE[model])


_INFERENCE: dict[str, float] = {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--grid", type=int, default=3)
    ap.add_argument("--tune-frac", type=float, default=1 / 3)
    ap.add_argument("--methods", default="")
    ap.add_argument("--no-memory", action="store_true", help="skip Z1 (fresh processes per method)")
    ap.add_argument("--budget", type=int, default=0, help="FE per run (default: the workload's)")
    ap.add_argument("--cache", default="")
    args = ap.parse_args()
    threads = pin_threads(1)
    workload = args.workload
    _, _, budget, spacing, metric, mem_model = WORKLOADS[workload]
    budget = args.budget or budget
    skipped = SKIPPED.get(workload, {})
    methods = [m for m in (args.methods.split(",") if args.methods else METHODS) if m not in skipped]
    path = Path(args.cache or f"runs/zo_bench_{workload}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    cache = json.loads(path.read_text()) if path.exists() else {}
    tune_budget = max(spacing, int(budget * args.tune_frac) // spacing * spacing)
    chosen, tuning, curves = {}, [], {}
    for method in methods:
        lrs = grid(LRS[workload][method], args.grid)
        dev = {lr: cached(cache, path, f"{method}|{lr}|tune{tune_budget}",
                          lambda m=method, v=lr: run(workload, m, v, 0, tune_budget))[-1]["val"] for lr in lrs}
        best = max(lrs, key=lambda lr: (dev[lr], -lr))
        chosen[method] = best
        tuning.append([method, ", ".join(f"{lr:g}: {acc:.3f}" for lr, acc in dev.items()), f"{best:g}",
                       "edge" if best in (lrs[0], lrs[-1]) and len(lrs) > 1 else "interior"])
        print(tuning[-1], flush=True)
        curves[method] = [cached(cache, path, f"{method}|{best}|{s}|{budget}",
                                 lambda m=method, v=best, s=s: run(workload, m, v, s, budget))
                          for s in range(1, args.seeds + 1)]
    extras = {}
    for method in methods:
        key = f"{method}|extras"
        if key not in cache or (not args.no_memory and cache[key].get("z1") is None):
            ratio, fe = step_ratio(workload, method, chosen[method], reps=7 if workload == "digits" else 3)
            z1 = None if args.no_memory else memory_ratio(mem_model, method)
            cache[key] = {"z2": ratio, "fe": fe, "z1": z1}
            path.write_text(json.dumps(cache))
        extras[method] = cache[key]
    body = report(workload, methods, chosen, curves, extras, budget)
    body += "\n\nLearning-rate tuning (seed 0, " + f"{metric} accuracy after {tune_budget:,} FE):\n\n"
    body += table(["method", "lr: accuracy", "chosen", "best on grid"], tuning)
    plot(workload, methods, curves)
    problem_name, problem_options, *_ = WORKLOADS[workload]
    notes = (f"torch threads {threads}; problem `{problem_name}` {problem_options or ''}; budget {budget:,} FE per run "
             f"(FE = one forward of one mini-batch, backprop step = 3 FE), test accuracy every {spacing} FE; "
             f"mean ± std over seeds 1–{args.seeds} at the tuned lr ({args.grid}-point log grid over one decade per "
             f"method, seed 0, {tune_budget:,} FE). Fixed options: "
             + "; ".join(f"{m} {METHODS[m][1] or 'defaults'}" for m in methods)
             + ". Z1: whole-process peak ÷ inference on the "
             + ("8×2048 MLP, batch 64" if mem_model == "mlp" else "MiniLM, batch 16")
             + " (fresh processes, 2 seeds, the methods' default options); Z2: one step ÷ one forward on this "
             "workload's batch, interleaved, median of 7 (MiniLM: 3). "
             + "".join(f"Not run: {m} ({why}). " for m, why in skipped.items())
             + f"Plot: `benchmarks/zo_bench_{workload}.png`. Bars (Z6): the best new estimator reaches MeZO's "
             "final test accuracy with ≤ ⅓ of MeZO's FE and ends ≥ MeZO + 2 points at MeZO's budget (paired).")
    title = {"digits": "Z6 — ZO-Bench on Z4 (load_digits MLP from scratch): every estimator at equal FE",
             "minilm": "Z6 — ZO-Bench on Z5 (MiniLM few-shot tweets, full parameters): every estimator at equal FE"}
    append(title[workload], body, notes)


def report(workload: str, methods: list[str], chosen: dict, curves: dict, extras: dict, budget: int) -> str:
    test = {m: np.array([[r["test"] for r in c] for c in curves[m]]) for m in methods}  # (seeds, points)
    fes = [r["fe"] for r in curves[methods[0]][0]]
    target = test["mezo"][:, -1].mean() if "mezo" in test else np.nan
    rows = []
    for m in methods:
        acc = test[m]
        mean_curve = acc.mean(0)
        reach = next((fe for fe, a in zip(fes, mean_curve) if a >= target), None)
        paired = acc[:, -1] - test["mezo"][:, -1] if "mezo" in test else np.full(len(acc), np.nan)
        wall = np.mean([c[-1]["wall"] for c in curves[m]])
        ex = extras[m]
        z1 = "—" if ex["z1"] is None or not np.isfinite(ex["z1"]) else f"{ex['z1']:.2f}"
        rows.append([m, f"{chosen[m]:g}", f"{acc[:, -1].mean():.3f} ± {acc[:, -1].std():.3f}",
                     f"{paired.mean() * 100:+.1f} ± {paired.std() * 100:.1f}",
                     "not reached" if reach is None else f"{reach:,} ({reach / budget:.2f})",
                     z1, f"{ex['z2']:.2f} ({ex['z2'] / ex['fe']:.2f} per FE)", f"{wall:.0f}"])
    return table(["method", "lr", f"test accuracy @ {budget:,} FE", "vs MeZO (pts, paired)",
                  "FE to MeZO's final accuracy (÷ budget)", "Z1 peak ÷ inference", "Z2 step ÷ forward",
                  "wall s per run"], rows)


def plot(workload: str, methods: list[str], curves: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m in methods:
        fes = [r["fe"] for r in curves[m][0]]
        acc = np.array([[r["test"] for r in c] for c in curves[m]])
        ax.plot(fes, acc.mean(0), label=m, lw=2.2 if m in ("mezo", "fzoo", "hizoo", "lozo", "lozo-m", "subzero") else 1.2,
                ls="--" if m.startswith("bp-") else "-")
        ax.fill_between(fes, acc.min(0), acc.max(0), alpha=0.12)
    ax.set_xlabel("forward-equivalents (FE)")
    ax.set_ylabel("test accuracy")
    ax.set_title({"digits": "Z4 digits MLP from scratch", "minilm": "Z5 MiniLM tweets fine-tuning"}[workload])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(Path(__file__).resolve().parent / f"zo_bench_{workload}.png", dpi=110)


if __name__ == "__main__":
    main()
