"""Z2: wall time of one MeZO step ÷ one forward;  Z3: K perturbations batched vs sequential.

Z2 — one MeZO step (ask, two in-place perturbed forwards with exact undo, tell: 4 noise passes
over P) against one ``no_grad`` forward of the same batch, timed alternately in the same loop
(the machine is shared: alternation keeps the two under the same load); the ratio of medians
per seed, then mean ± std over seeds. Also the time of the 4 noise passes alone.
Models: the 8×2048 MLP (batch 64, 1024) and MiniLM on real tweets (batch 16, 32; all weights
and the bias subset).

Z3 — K = 32 perturbations of the load_digits MLP 64-64-10 and CNN (batch 64): CGE coordinates
(+ the clean point) and MeZO directions (q = 16, two-sided), evaluated by one
``TorchProblem.evaluate`` call in place (K sequential forwards) vs batched (vmap over stacked
copies; CGE also with feature reuse).

    python benchmarks/zo_speed.py [--seeds 3] [--parts z2,z3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bbopt import make_optimizer  # noqa: E402
from bbopt.perturbations import Clean, Coordinate, Direction  # noqa: E402
from bbopt.problems import get  # noqa: E402
from benchmarks._report import append, pin_threads, table  # noqa: E402
from benchmarks.zo_memory import build  # noqa: E402


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def mezo_ratio(problem, reps: int) -> tuple[float, float]:
    """(median step ÷ median forward, median noise-only ÷ median forward) over ``reps`` alternations."""
    opt = make_optimizer("mezo", problem.space, seed=0, lr=1e-7)
    data = problem.batch(0)

    def forward():
        with torch.no_grad():
            problem.loss(problem.model, data).mean()

    def step():
        batch = opt.ask()
        opt.tell(batch, problem.evaluate(batch))

    def noise():  # the 4 regenerations of z a step makes, without the forwards
        space = problem.space
        for _ in range(4):
            for c in range(space.n_chunks):
                space.delta(7, "gaussian", c, 1e-3)

    forward(), step()
    f, s, n = [], [], []
    for _ in range(reps):
        f.append(timed(forward))
        s.append(timed(step))
        n.append(timed(noise))
    med = statistics.median(f)
    return statistics.median(s) / med, statistics.median(n) / med


def z2(seeds: int, exact: bool = True) -> str:
    rows = []
    for model, batch, subset, reps in [("mlp", 64, None, 15), ("mlp", 1024, None, 7), ("minilm", 16, "all", 5),
                                       ("minilm", 32, "all", 5), ("minilm", 16, "bias", 5)]:
        ratios, noise = [], []
        for seed in range(seeds):
            problem = build(model, batch, seed, exact=exact)
            if subset == "bias":
                from bbopt.problems.text_data import minilm_tweets

                problem = minilm_tweets(seed=seed, shots=batch // 2, batch_size=batch, n_test=2, subset="bias",
                                        exact=exact)
            r, nz = mezo_ratio(problem, reps)
            ratios.append(r)
            noise.append(nz)
        label = f"{model} ({subset})" if subset else model
        rows.append([label, batch, f"{problem.space.n_params / 1e6:.2f}M", f"{np.mean(ratios):.2f} ± {np.std(ratios):.2f}",
                     f"{np.mean(noise):.2f}"])
        print(rows[-1], flush=True)
    return table(["model", "batch", "perturbed params", "MeZO step ÷ forward", "4 noise passes ÷ forward"], rows)


def z3_specs(problem, kind: str, k: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    if kind == "cge":
        sizes = [t.numel() for t in problem.space.tensors]
        picks = rng.choice(sum(sizes), k, replace=False)
        offsets = np.cumsum([0] + sizes)
        coords = []
        for flat in picks:
            ti = int(np.searchsorted(offsets, flat, side="right") - 1)
            coords.append(Coordinate(0, ti, int(flat - offsets[ti]), 5e-3))
        return [Clean(0)] + coords
    seeds = rng.integers(0, 1 << 62, k // 2)
    return [Direction(0, int(s), sign * 1e-3) for s in seeds for sign in (1, -1)]


def z3(seeds: int, k: int = 32) -> str:
    rows = []
    for name in ("zo-digits-mlp", "zo-digits-cnn"):
        for kind in ("cge", "mezo-q16"):
            modes = [("inplace", True), ("batched", False)] + ([("batched", True)] if kind == "cge" else [])
            times: dict[str, list[float]] = {}
            for seed in range(seeds):
                specs = z3_specs(get(name, seed=seed), kind, k, seed)
                problems = {f"{m}{'+reuse' if r and m == 'batched' else ''}": get(name, seed=seed, mode=m,
                                                                                  feature_reuse=r)
                            for m, r in modes}
                for p in problems.values():
                    p.evaluate(specs)  # warm-up
                per = {label: [] for label in problems}
                for _ in range(7):
                    for label, p in problems.items():
                        per[label].append(timed(lambda p=p, s=specs: p.evaluate(s)))
                for label, values in per.items():
                    times.setdefault(label, []).append(statistics.median(values))
            seq = np.array(times["inplace"])
            for label, values in times.items():
                v = np.array(values)
                rows.append([name, kind, len(specs), label, f"{1e3 * v.mean():.1f} ± {1e3 * v.std():.1f}",
                             f"{np.mean(seq / v):.2f} ± {np.std(seq / v):.2f}"])
                print(rows[-1], flush=True)
    return table(["problem", "perturbations", "forwards", "evaluation", "ms per step", "speed-up vs in place"], rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--parts", default="z2,z3")
    ap.add_argument("--arith", action="store_true", help="Z2 with exact=False (MeZO's plain ±ε round trip)")
    args = ap.parse_args()
    threads = pin_threads(1)
    parts = args.parts.split(",")
    if "z2" in parts:
        body = z2(args.seeds, exact=not args.arith)
        mode = "exact=False: the ±ε round trip in plain arithmetic" if args.arith else "exact undo (repair lists)"
        append(f"Z2 — MeZO step time ÷ forward time ({'exact=False' if args.arith else 'exact undo'})", body,
               f"torch threads {threads}; medians of alternated timings per seed, mean ± std over {args.seeds} seeds. "
               f"A step = 2 perturbed forwards + 4 regenerations of z over P (apply, move to −ε, undo, update); "
               f"{mode}. Bar: ≤ 2.3 (limit 2.0).")
    if "z3" in parts:
        body = z3(args.seeds)
        append("Z3 — K perturbations: one batched forward vs K sequential forwards", body,
               f"torch threads {threads}; load_digits batch 64; medians of 7 alternated calls per seed, mean ± std "
               f"over {args.seeds} seeds (seed = init + which coordinates / directions). Bar: ≥ 3× at K = 32.")


if __name__ == "__main__":
    main()
