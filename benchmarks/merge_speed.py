"""M3: cost of one candidate merge (decode + in-place merge + fitness) vs one plain forward.

For each workload and genome: the median wall time of ``MergeProblem.evaluate`` on one
random candidate, the median of a plain forward of the (already merged) model over the
same fitness split, and the merge alone. Repeats are interleaved, so background load hits
both alike. Threads pinned to 1.

    python benchmarks/merge_speed.py [--minilm] [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from bbopt.problems import get

from _report import append, pin_threads, table


def _forward(problem) -> None:
    with torch.inference_mode():
        for t in problem.fitness.tasks:
            t.logits(problem.merged.module)


def measure(problem, repeats: int, seed: int = 0) -> tuple[float, float, float]:
    """Medians (s) of: one candidate evaluation, one plain forward, one merge."""
    rng = np.random.default_rng(seed)
    cand, fwd, merge = [], [], []
    X = problem.space.sample(rng, repeats)
    problem.evaluate(X[:1])  # warm-up
    for x in X:
        t0 = time.perf_counter()
        problem.evaluate(x[None])
        t1 = time.perf_counter()
        _forward(problem)
        t2 = time.perf_counter()
        problem.model_at(x)
        t3 = time.perf_counter()
        cand.append(t1 - t0)
        fwd.append(t2 - t1)
        merge.append(t3 - t2)
    return statistics.median(cand), statistics.median(fwd), statistics.median(merge)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm", action="store_true", help="also the MiniLM workload (needs its cached experts)")
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    pin_threads(1)
    problems: dict = {}
    cases = [("digits MLP (3 experts)", "merge-digits", args.repeats)]
    if args.minilm:
        cases.append(("MiniLM (2 experts)", "merge-minilm", max(3, args.repeats // 40)))
    rows = []
    for (label, name, repeats), genome in [(c, g) for c in cases for g in ("per_layer", "sakana", "ties")]:
        if name not in problems:
            problems[name] = get(name, seed=0)
        p = problems[name].with_genome(genome)
        n_ex = p.fitness.size()
        cand, fwd, merge = measure(p, repeats)
        rows.append([label, genome, p.tv.n_params, n_ex, repeats, f"{fwd * 1e3:.2f}", f"{merge * 1e3:.2f}",
                     f"{cand * 1e3:.2f}", f"{cand / fwd:.2f}"])
        print(rows[-1], flush=True)
    body = table(["workload", "genome", "merged params", "fitness examples", "repeats", "forward ms",
                  "merge ms", "candidate ms", "candidate / forward"], rows)
    append("M3 — one candidate merge + fitness vs one plain forward", body,
           "Medians over interleaved repeats; candidate = decode + in-place merge from cached task vectors + "
           "forward + loss. Bar: candidate / forward ≤ 1.5.")


if __name__ == "__main__":
    main()
