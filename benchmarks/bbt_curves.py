"""B1 / B3 curves — test accuracy vs calls of BBT and BBTv2 on few-shot tweets (packaged MiniLM).

The B1 setting (``bbt_fewshot.py``: 16 + 16 per class train / dev, 500 held-out test tweets,
cosine verbalizer, 10 slots, d 100 per block), run long: at each mark the best-dev prompt so
far (dev every ``--dev-every`` calls) is scored on the test split, so a curve is what a user
stopping at that budget would get. ``--gens`` sets BBTv2's generations per visit to a layer
(BBTv2: 1), ``--alpha-deep`` / ``--sigma0`` its projection scale and CMA-ES step.

Each (method, seed) run is written to ``--out`` as JSON as soon as it ends (``run``), so a long
curve can be made in several invocations; ``plot`` draws every JSON under ``--out`` with the
same ``--label`` as mean ± range over seeds into a PNG and appends the table to RESULTS.md.

Usage::

    python benchmarks/bbt_curves.py run --methods BBT BBTv2 --seeds 0 1 2 --budget 2000
    python benchmarks/bbt_curves.py plot --png benchmarks/bbt_curves.png
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

HERE = Path(__file__).resolve().parent
MARKS = (40, 100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 2000, 3000, 4000)


def build(method: str, seed: int, args: argparse.Namespace):
    from bbopt.problems import get

    deep = method == "BBTv2"
    return get("prompt-tuning", deep=deep, seed=seed, alpha=args.alpha_deep if deep else args.alpha,
               sigma0=args.sigma0, n_prompt=args.n_prompt, dim=args.dim, max_text_tokens=args.max_tokens,
               shots=args.shots, n_test=args.n_test, dev_every=args.dev_every, pooling=args.pooling)


def run_one(method: str, seed: int, args: argparse.Namespace) -> dict:
    from bbopt import minimize

    t0 = time.perf_counter()
    problem = build(method, seed, args)
    built = time.perf_counter() - t0
    marks = [m for m in MARKS if m <= args.budget]
    out = {"label": args.label, "method": method, "seed": seed, "zero_shot_prompt": None, "curve": [],
           "settings": {k: v for k, v in vars(args).items() if k not in ("out", "command", "png")}}
    path = Path(args.out) / f"{method}-{args.label or 'default'}-s{seed}.json"
    out["zero_shot_prompt"] = problem.score(None, "test")["accuracy"]
    tested: dict[bytes, float] = {}  # the best-dev prompt often stays the same between marks

    def at_marks(info) -> None:
        before = info.n_evals - len(info.batch)
        for mark in marks:
            if before < mark <= info.n_evals:
                z, _ = problem.tracker.selected(info.best_x)
                key = np.asarray(z).tobytes()
                if key not in tested:
                    tested[key] = problem.score(z, "test")["accuracy"]
                out["curve"].append({"calls": info.n_evals, "test": tested[key], "dev": problem.tracker.dev_acc,
                                     "train_loss": problem.tracker.train_loss,
                                     "seconds": time.perf_counter() - t0 - built, "load": os.getloadavg()[0]})
                path.write_text(json.dumps(out, indent=1))  # a curve cut short still counts up to here
                print(f"{args.label} {method} seed {seed}: {out['curve'][-1]}", flush=True)

    cma = {"sigma0": args.sigma0, "popsize": args.popsize, "restarts": 0, "diagonal": False}
    optimizer, options = (("block", {"inner_options": cma, "generations_per_visit": args.gens})
                          if method == "BBTv2" else ("cma", cma))
    minimize(problem, optimizer, args.budget, seed=seed, options=options, progress=False, callbacks=[at_marks])
    return out


def plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(p.read_text()) for p in sorted(Path(args.out).glob("*.json"))]
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(f"{r['method']} {r['label']}".strip(), []).append(r)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rows = []
    for name, group in sorted(groups.items()):
        common = sorted(set.intersection(*({p["calls"] for p in r["curve"]} for r in group)))
        acc = np.array([[next(p["test"] for p in r["curve"] if p["calls"] == c) for c in common] for r in group]) * 100
        ax.plot(common, acc.mean(0), marker="o", label=f"{name} ({len(group)} seeds)")
        ax.fill_between(common, acc.min(0), acc.max(0), alpha=0.15)
        for j, c in enumerate(common):
            rows.append([name, c, len(group), f"{acc[:, j].mean():.1f}", f"{acc[:, j].min():.1f}–{acc[:, j].max():.1f}",
                         " ".join(f"{a:.1f}" for a in acc[:, j])])
    text = [r["zero_shot_prompt"] for r in runs if r["settings"]["pooling"] == "text"]
    zero = statistics.mean(text) * 100 if text else float("nan")
    shots = runs[0]["settings"]["shots"] if runs else 0
    ax.axhline(zero, color="grey", ls="--", label=f"untuned prompt (z = 0, pooling text) {zero:.1f}")
    ax.set_xlabel(f"calls (forwards over the {2 * shots} training tweets)")
    ax.set_ylabel("test accuracy % (best-dev prompt)")
    ax.set_xscale("log")
    ax.set_title(f"BBT vs BBTv2, MiniLM, {shots}-shot tweets (mean, band = range over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
    body = _report.table(["run", "calls", "seeds", "test acc % (mean)", "range", "per seed"], rows)
    body += "\n\n" + paired(groups)
    where = lambda p: Path(p).resolve().relative_to(HERE.parent) if HERE.parent in Path(p).resolve().parents else p  # noqa: E731
    notes = (f"PNG: `{where(args.png)}`. Runs in `{where(args.out)}` "
             f"(their settings and the load average at their end are in each JSON).")
    if args.dry_run:
        print(body + "\n\n" + notes)
    else:
        _report.append("B1 curves — BBT and BBTv2 test accuracy vs calls, tweets, MiniLM", body, notes)


def paired(groups: dict[str, list[dict]]) -> str:
    """BBTv2 − BBT test accuracy per seed at each mark both reached (the B1 verdict's figure)."""
    rows = []
    for label in sorted({name.split(" ", 1)[1] for name in groups if name.startswith("BBTv2 ")}):
        deep = {r["seed"]: r for r in groups[f"BBTv2 {label}"]}
        flat = {r["seed"]: r for r in groups.get("BBT main", [])}
        seeds = sorted(set(deep) & set(flat))
        if not seeds:
            continue
        marks = sorted(set.intersection(*({p["calls"] for p in run["curve"]} for s in seeds
                                          for run in (deep[s], flat[s]))))
        for mark in marks:
            diffs = [100 * (at(deep[s], mark) - at(flat[s], mark)) for s in seeds]
            rows.append([f"BBTv2 {label} − BBT main", mark, len(seeds), f"{statistics.mean(diffs):+.1f}",
                         " ".join(f"{d:+.1f}" for d in diffs)])
    return _report.table(["paired", "calls", "seeds", "Δ test acc (points, mean)", "per seed"], rows)


def at(run: dict, calls: int) -> float:
    return next(p["test"] for p in run["curve"] if p["calls"] == calls)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("run", "plot"))
    parser.add_argument("--methods", nargs="+", default=["BBT", "BBTv2"], choices=("BBT", "BBTv2"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--popsize", type=int, default=20)
    parser.add_argument("--gens", type=int, default=1, help="BBTv2: CMA-ES generations per visit to a layer")
    parser.add_argument("--shots", type=int, default=16, help="training tweets per class (and as many dev)")
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--n-prompt", type=int, default=10)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--dev-every", type=int, default=100)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--alpha-deep", type=float, default=0.5)
    parser.add_argument("--sigma0", type=float, default=1.0)
    parser.add_argument("--pooling", default="text", choices=("text", "all"))
    parser.add_argument("--label", default="", help="names this setting in the plot (e.g. 'pop10')")
    parser.add_argument("--out", default=str(HERE / "curves"))
    parser.add_argument("--png", default=str(HERE / "bbt_curves.png"))
    parser.add_argument("--dry-run", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = parse()
    _report.pin_threads(1)
    if args.command == "plot":
        plot(args)
        return
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for method in args.methods:
            run_one(method, seed, args)


if __name__ == "__main__":
    main()
