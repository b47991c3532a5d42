"""B2 — BBT / BBTv2 population evaluation: one batched forward vs one forward per candidate.

The packaged MiniLM on the tweet task (16 shots per class: 32 training rows), n_prompt 10,
d 100. For each population the script times (a) one forward of the 32 rows per candidate,
the way the reference code evaluates, (b) the whole population folded into the batch
dimension (popsize × 32 rows, chunked to ``max_rows``), and for BBTv2 (c) the same with the
shared prefix: a block visit changes one layer's prompt, so the layers before it run once
for the whole population. Losses of (a), (b) and (c) must agree; the script prints the
largest difference. Interleaved repeats, medians; torch threads pinned to 1.

Usage: ``python benchmarks/bbt_population.py [--popsize 10 20] [--reps 3] [--max-rows 320]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def one_by_one(problem, z):
    return np.array([problem.population_scores(zi[None], "train")[0][0] for zi in z])


def visit_population(problem, popsize, block, seed):
    """A BBTv2 visit to ``block``: every other block at one shared (random) incumbent."""
    rng = np.random.default_rng(seed)
    z = np.repeat(rng.standard_normal((1, problem.space.dim)), popsize, axis=0)
    s, e = problem.blocks[block]
    z[:, s:e] = rng.standard_normal((popsize, e - s))
    return z


def measure(problem, popsize, reps, max_rows):
    """Seconds per population: {'loop': [...], 'batched': [...], 'shared': {block: [...]}} and max |Δloss|."""
    problem.max_rows = max_rows
    times = {"loop": [], "batched": [], "shared": {b: [] for b in range(problem.n_blocks)}}
    worst = 0.0
    for rep in range(reps):
        z = np.random.default_rng(rep).standard_normal((popsize, problem.space.dim))
        t, ref = timed(lambda z=z: one_by_one(problem, z))
        times["loop"].append(t)
        problem.share_prefix = False
        t, got = timed(lambda z=z: problem.population_scores(z, "train")[0])
        times["batched"].append(t)
        worst = max(worst, float(np.abs(got - ref).max()))
        problem.share_prefix = True
        for b in range(1, problem.n_blocks):
            zb = visit_population(problem, popsize, b, rep)
            t, got = timed(lambda zb=zb: problem.population_scores(zb, "train")[0])
            times["shared"][b].append(t)
            if rep == 0:
                worst = max(worst, float(np.abs(got - one_by_one(problem, zb)).max()))
    return times, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--popsize", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-rows", type=int, default=320)
    args = parser.parse_args()
    threads = _report.pin_threads(1)
    from bbopt.problems import get

    problem = get("prompt-tuning", deep=True, n_prompt=10, dim=100, n_test=0, max_text_tokens=32, seed=0)
    rows = []
    for popsize in args.popsize:
        times, worst = measure(problem, popsize, args.reps, args.max_rows)
        loop = statistics.median(times["loop"])
        batched = statistics.median(times["batched"])
        rows.append([popsize, "BBT (input layer): batched", f"{loop:.2f}", f"{batched:.2f}", f"{loop / batched:.2f}×",
                     f"{worst:.1e}"])
        shared = [statistics.median(times["shared"][b]) for b in range(1, problem.n_blocks)]
        for b, t in zip(range(1, problem.n_blocks), shared):
            rows.append([popsize, f"BBTv2 visit to layer {b}: batched + shared prefix", f"{loop:.2f}", f"{t:.2f}",
                         f"{loop / t:.2f}×", ""])
        sweep = batched + sum(shared)  # one BBTv2 sweep: layer 0 (no prefix to share) + layers 1..L-1
        rows.append([popsize, "BBTv2 whole sweep (all 6 visits)", f"{loop * problem.n_blocks:.2f}", f"{sweep:.2f}",
                     f"{loop * problem.n_blocks / sweep:.2f}×", ""])
    body = _report.table(["popsize", "evaluation", "one forward per candidate (s)", "batched (s)", "speed-up",
                          "max |Δ loss|"], rows)
    notes = (f"MiniLM-L6 (6 layers, H 384), 32 training tweets of ≤ 32 tokens + 10 prompt slots, d 100; "
             f"max_rows {args.max_rows}; seconds per population, median of {args.reps} interleaved repeats; "
             f"torch threads {threads}. 'batched' folds the population into the batch dimension; "
             "'shared prefix' also runs the layers before the visited block once for the whole population. "
             "Bar (B2): ≥ 2× on CPU.")
    _report.append("B2 — BBT/BBTv2 population evaluation: batched vs one forward per candidate", body, notes)


if __name__ == "__main__":
    main()
