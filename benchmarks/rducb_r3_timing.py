"""R3: time per RDUCB iteration (one ask: refit, message passing, polish) at n = 500, D = 100.

n = 500 uniform observations of Styblinski–Tang 100-D are told, then ``--iters`` single-point
asks are timed (each told before the next, so n grows 500 → 500 + iters) after one warm-up.
Wall and CPU (process) time are both reported: on this shared machine wall time depends on
the load of others' jobs, CPU time much less. The split into the hyper-parameter refit,
the message-passing acquisition and the L-BFGS-B polish is measured by wrapping those steps.
Also timed: the R1 scale (D = 20, n = 200). Bar (BENCHMARKS.md): ≤ 2 s per iteration.

    python benchmarks/rducb_r3_timing.py [--iters 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

from bbopt import make_optimizer
from bbopt.problems import get
from bbopt.strategies.bo import rducb as rducb_module

from _report import append, pin_threads, table


def timed(store: dict, key: str, func):
    def wrapper(*args, **kwargs):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return func(*args, **kwargs)
        finally:
            store[key + " wall"] += time.perf_counter() - t0
            store[key + " cpu"] += time.process_time() - c0
    return wrapper


def measure(dim: int, n: int, iters: int) -> dict[str, list[float]]:
    problem = get("styblinski-tang", dim=dim, lower=-4.0, upper=4.0)
    opt = make_optimizer("rducb", problem.space, seed=0)
    design = opt.ask(n)
    opt.tell(design, problem.evaluate(design))
    parts: dict[str, float] = defaultdict(float)
    opt._fit = timed(parts, "fit", opt._fit)
    originals = {name: getattr(rducb_module, name) for name in ("zoom_minimize", "polish")}
    for name, func in originals.items():
        setattr(rducb_module, name, timed(parts, name, func))
    samples: dict[str, list[float]] = defaultdict(list)
    try:
        for i in range(iters + 1):
            parts.clear()
            t0, c0 = time.perf_counter(), time.process_time()
            batch = opt.ask()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            opt.tell(batch, problem.evaluate(batch))
            if i == 0:
                continue  # warm-up: the first refit starts from the initial hyper-parameters
            samples["iteration wall"].append(wall)
            samples["iteration cpu"].append(cpu)
            for key, value in parts.items():
                samples[key].append(value)
    finally:
        for name, func in originals.items():
            setattr(rducb_module, name, func)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()
    threads = pin_threads(1)
    rows = []
    keys = ["iteration wall", "iteration cpu", "fit cpu", "zoom_minimize cpu", "polish cpu"]
    for dim, n in [(100, 500), (20, 200)]:
        samples = measure(dim, n, args.iters)
        cells = [f"{statistics.mean(samples[k]):.2f} ± {statistics.stdev(samples[k]):.2f}" for k in keys]
        rows.append([f"D = {dim}, n = {n}"] + cells)
    body = table(["setting", "s/iteration (wall)", "s/iteration (CPU)", "refit (CPU)",
                  "message passing (CPU)", "polish (CPU)"], rows)
    notes = (f"{args.iters} timed iterations after one warm-up, mean ± sd; RDUCB defaults (refit: 10 likelihood "
             f"evaluations on a random subset of 250 points; 150-point grids, 16 zoom + 16 local states; polish 30 "
             f"L-BFGS-B iterations). Threads pinned to {threads}. Bar: ≤ 2 s per iteration at D = 100, n = 500.")
    append("R3 — RDUCB time per iteration", body, notes)


if __name__ == "__main__":
    main()
