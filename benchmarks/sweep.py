"""E3 and E4: parallel evaluation and batched evaluation.

E3 — a 0.2 s objective: ``minimize`` with 2 joblib (loky) workers vs 1, and a sweep of
runs on loky with 2 workers vs 1 and on a dask.distributed LocalCluster (2 workers),
checking that every backend records identical per-run results.
E4 — a population of 64 candidate weight vectors of a small torch MLP (64-32-10 on
``load_digits``), scored through one batched call (``torch.bmm`` over the population) vs a
Python loop of single-candidate calls, both through the Problem protocol.

    python benchmarks/sweep.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bbopt import Box, FunctionProblem, Problem, minimize
from bbopt.batch import candidates_of
from bbopt.parallel import sweep

from _report import append, pin_threads, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from objectives import sleepy_sphere  # noqa: E402  (a 0.2 s objective importable by workers)


def e3_minimize(budget: int) -> list[list]:
    space = Box(-5, 5, dim=3)
    timings = {}
    for n_jobs in (1, 2):
        t0 = time.perf_counter()
        result = minimize(sleepy_sphere, "random", budget, space=space, seed=0, n_jobs=n_jobs,
                          options={"popsize": 10}, progress=False)
        timings[n_jobs] = (time.perf_counter() - t0, result.fun)
    assert timings[1][1] == timings[2][1]
    return [["minimize, 0.2 s objective", f"{budget} evaluations", f"{timings[1][0]:.2f}",
             f"{timings[2][0]:.2f}", f"{timings[1][0] / timings[2][0]:.2f}×", "identical"]]


def e3_sweep(runs: int, budget: int) -> list[list]:
    config = {"problem": {"name": "objectives:sleepy_sphere", "space": {"lower": -5, "upper": 5, "dim": 2}},
              "optimizer": {"name": "random", "popsize": 1}, "budget": budget,
              "grid": {"seed": list(range(runs))}}
    timings, results = {}, {}
    for label, n_jobs, backend in (("loky 1", 1, "loky"), ("loky 2", 2, "loky"), ("dask 2", 2, "dask")):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            rows = sweep(config, Path(tmp) / "sweep", n_jobs=n_jobs, backend=backend)
            timings[label] = time.perf_counter() - t0
            results[label] = {r["run"]: r["fun"] for r in rows}
    same = "identical" if results["loky 1"] == results["loky 2"] == results["dask 2"] else "DIFFERENT"
    return [[f"sweep of {runs} runs", f"{budget} evaluations each", f"{timings['loky 1']:.2f}",
             f"{timings['loky 2']:.2f}", f"{timings['loky 1'] / timings['loky 2']:.2f}×", same],
            [f"sweep of {runs} runs, dask LocalCluster", "2 workers", f"{timings['loky 1']:.2f}",
             f"{timings['dask 2']:.2f}", f"{timings['loky 1'] / timings['dask 2']:.2f}×", same]]


class PopulationMLP(Problem):
    """Neuroevolution of a 64-32-10 MLP on digits: a candidate is the flat weight vector."""

    def __init__(self, batched: bool, n_examples: int):
        from sklearn.datasets import load_digits

        data = load_digits()
        self.x = torch.tensor(data.data[:n_examples] / 16.0, dtype=torch.float32)
        self.y = torch.tensor(data.target[:n_examples])
        self.shapes = [(64, 32), (32,), (32, 10), (10,)]
        self.space = Box(-1, 1, dim=sum(int(np.prod(s)) for s in self.shapes))
        self.batched = batched

    def _unflatten(self, w: torch.Tensor) -> list[torch.Tensor]:
        out, k = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            out.append(w[:, k:k + size].reshape(w.shape[0], *shape))
            k += size
        return out

    def evaluate(self, batch) -> np.ndarray:
        w = torch.as_tensor(np.asarray(candidates_of(batch)), dtype=torch.float32)
        if self.batched:
            return self._loss(w).numpy()
        return np.concatenate([self._loss(w[i:i + 1]).numpy() for i in range(len(w))])

    def _loss(self, w: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2 = self._unflatten(w)
        with torch.no_grad():
            h = torch.relu(torch.matmul(self.x, w1) + b1[:, None, :])  # (pop, n, 32)
            logits = torch.bmm(h, w2) + b2[:, None, :]
            return torch.nn.functional.cross_entropy(logits.transpose(1, 2), self.y.expand(len(w), -1),
                                                     reduction="none").mean(1)


def e4(repeats: int, n_examples: int) -> list[list]:
    batched, looped = PopulationMLP(True, n_examples), PopulationMLP(False, n_examples)
    pop = batched.space.sample(np.random.default_rng(0), 64)
    np.testing.assert_allclose(batched.evaluate(pop), looped.evaluate(pop), rtol=1e-5)
    times = {True: [], False: []}
    for _ in range(repeats):
        for problem in (batched, looped):
            t0 = time.perf_counter()
            problem.evaluate(pop)
            times[problem.batched].append(time.perf_counter() - t0)
    loop_fn = FunctionProblem(lambda w: float(looped.evaluate(w[None])[0]), looped.space)
    t0 = time.perf_counter()
    loop_fn.evaluate(pop)
    t_fn = time.perf_counter() - t0
    b, lp = np.median(times[True]), np.median(times[False])
    return [[f"population 64 × MLP 64-32-10 (2,410 weights), mini-batch of {n_examples} digits", f"{b * 1e3:.1f}", f"{lp * 1e3:.1f}",
             f"{lp / b:.1f}×", f"{t_fn * 1e3:.1f}"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    threads = pin_threads(1)
    rows = e3_minimize(40 if args.quick else 100) + e3_sweep(4 if args.quick else 8, 10 if args.quick else 20)
    append("E3 — parallel evaluation: 2 workers vs 1",
           table(["what", "size", "1 worker (s)", "2 workers (s)", "speed-up", "per-run results"], rows),
           "Wall times include starting the worker processes (loky) and the LocalCluster (dask). Bar: ≥ 1.8×; "
           "identical per-run results across backends.")
    append("E4 — batched problem evaluation vs a loop of single calls",
           table(["workload", "one batched call (ms)", "loop of 64 calls (ms)", "speed-up",
                  "loop through FunctionProblem (ms)"],
                 e4(5 if args.quick else 15, 64) + e4(5 if args.quick else 15, 512)),
           f"torch threads pinned to {threads}; median over repeats. Bar: ≥ 5× on CPU.")


if __name__ == "__main__":
    main()
