"""E1: per-candidate ask+tell overhead — bbopt's CMA-ES vs raw ``cma`` vs nevergrad's CMA.

A trivial objective (sum of squares, computed outside the timed region's hot path for all
three alike), the same popsize and bounds for bbopt and raw pycma, 10-D and 1000-D (full
and sep-CMA). Repeats are interleaved and the median is reported, so background load hits
every method alike. Also times ``minimize`` (bbopt's whole loop: evaluation, history
records, best tracking) on the same objective.

    python benchmarks/overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import cma
import numpy as np

from bbopt import Box, make_optimizer, minimize

from _report import append, pin_threads, table


def raw_cma(dim: int, popsize: int, diagonal: bool, n_cand: int, seed: int) -> float:
    opts = {"bounds": [-5, 5], "popsize": popsize, "seed": seed + 1, "verbose": -9, "verb_log": 0,
            "verb_disp": 0, "CMA_diagonal": diagonal}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        es = cma.CMAEvolutionStrategy(np.zeros(dim), 2.0, opts)
        t0 = time.perf_counter()
        done = 0
        while done < n_cand:
            X = es.ask()
            es.tell(X, [float(np.dot(x, x)) for x in X])
            done += len(X)
    return (time.perf_counter() - t0) / done


def bbopt_cma(dim: int, popsize: int, diagonal: bool, n_cand: int, seed: int) -> float:
    opt = make_optimizer("cma", Box(-5, 5, dim=dim), seed=seed, sigma0=0.2, popsize=popsize, diagonal=diagonal,
                         restarts=0)  # raw pycma's loop has no restarts either
    t0 = time.perf_counter()
    done = 0
    while done < n_cand:
        batch = opt.ask()
        opt.tell(batch, [float(np.dot(x, x)) for x in batch.x])
        done += len(batch)
    return (time.perf_counter() - t0) / done


def bbopt_loop(dim: int, popsize: int, diagonal: bool, n_cand: int, seed: int) -> float:
    t0 = time.perf_counter()
    minimize(lambda X: np.einsum("ij,ij->i", X, X), "cma", n_cand, space=Box(-5, 5, dim=dim), vectorized=True,
             seed=seed, options={"popsize": popsize, "diagonal": diagonal, "restarts": 0}, progress=False)
    return (time.perf_counter() - t0) / n_cand


def nevergrad_cma(dim: int, popsize: int, diagonal: bool, n_cand: int, seed: int) -> float:
    import nevergrad as ng

    param = ng.p.Array(init=np.zeros(dim)).set_bounds(-5, 5)
    param.random_state = np.random.RandomState(seed)
    name = "DiagonalCMA" if diagonal else "CMA"
    opt = ng.optimizers.registry[name](parametrization=param, budget=n_cand)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n_cand):
            cand = opt.ask()
            opt.tell(cand, float(np.dot(cand.value, cand.value)))
    return (time.perf_counter() - t0) / n_cand


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer candidates and repeats")
    args = parser.parse_args()
    threads = pin_threads(1)
    repeats = 3 if args.quick else 7
    settings = [(10, 10, False, 3000), (1000, 24, False, 480), (1000, 24, True, 4800)]
    methods = {"raw cma": raw_cma, "bbopt cma (ask/tell)": bbopt_cma, "bbopt minimize": bbopt_loop,
               "nevergrad CMA": nevergrad_cma}
    rows = []
    for dim, popsize, diagonal, n_cand in settings:
        n = n_cand // 4 if args.quick else n_cand
        times: dict[str, list[float]] = {m: [] for m in methods}
        for rep in range(repeats):
            for name, fn in methods.items():
                if name == "nevergrad CMA" and dim == 1000 and not diagonal and rep > 1:
                    continue  # ~2 ms/candidate: two repeats are enough for its order of magnitude
                times[name].append(fn(dim, popsize, diagonal, n, rep))
        med = {m: statistics.median(v) for m, v in times.items()}
        spread = {m: (min(v), max(v)) for m, v in times.items()}
        for name in methods:
            rows.append([f"{dim}-D {'sep' if diagonal else 'full'} λ={popsize}", name,
                         f"{med[name] * 1e6:.1f}", f"{spread[name][0] * 1e6:.1f}–{spread[name][1] * 1e6:.1f}",
                         f"{med[name] / med['raw cma']:.2f}×"])
    body = table(["setting", "method", "µs/candidate (median)", "range", "÷ raw cma"], rows)
    append("E1 — per-candidate ask+tell overhead", body,
           f"{repeats} interleaved repeats per method; torch/BLAS threads pinned to {threads}. "
           "bbopt cma adds ids, pending bookkeeping, the replay log, bounds mapping and best tracking on "
           "top of pycma; `bbopt minimize` adds the loop (evaluation, history records). Bar: ≤ 1.2× raw cma.")


if __name__ == "__main__":
    main()
