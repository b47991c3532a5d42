"""Iteration counts of every (system, ω) pair of a stream, with the library's own kernels.

The anytime tables (S4) and the tuning of the learners' defaults replay per-system costs of
all 20 grid ω on T = 1,000 systems, ≥ 3 seeds, 3 streams: 180,000 solves. One solve at a
time pays Python's overhead per sweep (S1's table took 661 s per seed at load 7). Here the
active systems of one ω are stacked into one block-diagonal matrix and swept together by
the same kernels the problem uses (:class:`bbopt.linsolve.SORSweep` — pyamg's compiled
row loop — for lexicographic SOR; :func:`bbopt.linsolve.redblack_sor`'s update on a
:class:`bbopt.linsolve.RedBlackSplit` for red–black), so every row sees the same operations
in the same order as in its own solve: the iterates are the same numbers. Each system stops
at its own first ‖b − Ax‖/‖b‖ < tol; systems that stopped are dropped when a quarter of
the stack has. Only the residual norm is summed in another order, so a count could differ
where the relative residual lands within rounding of ``tol``: :func:`check` re-solves a
sample with the problem's solver, and the benchmarks report the agreement.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from bbopt.linsolve import RedBlackSplit, SORSweep

CACHE = Path(__file__).resolve().parent.parent / "runs" / "sor_tables"  # runs/ is git-ignored


def arm_iterations(As: list, bs: np.ndarray, omega: float, solver: str, tol: float = 1e-8,
                   maxiter: int = 10_000, div_tol: float = 1e8) -> np.ndarray:
    """Iterations ``(S,)`` of SOR with ``omega`` from x = 0 on systems ``As[s] x = bs[s]`` (``bs: (S, n)``):
    the library's stopping rule (``maxiter`` when not converged or diverged)."""
    S, n = bs.shape
    result = np.full(S, int(maxiter), dtype=np.int64)
    xs = np.zeros((S, n))
    bnorm = np.linalg.norm(bs, axis=1)
    active, k = np.arange(S), 0
    while active.size and k < maxiter:
        A = sp.block_diag([As[i] for i in active], format="csr")
        A.sort_indices()
        b, x = bs[active].ravel(), xs[active].ravel()
        stopped = np.zeros(active.size, dtype=bool)
        step = _lexicographic(A, b, x, omega) if solver == "sor" else _redblack(A, b, x, omega, active.size, n)
        while k < maxiter and stopped.sum() < max(1, active.size // 4):
            r = step()
            k += 1
            rel = np.sqrt((r.reshape(active.size, n) ** 2).sum(axis=1)) / bnorm[active]
            diverged = ~np.isfinite(rel) | (rel > div_tol)
            new = ~stopped & (diverged | (rel < tol))
            result[active[new & ~diverged]] = k
            stopped |= new
        xs[active] = x.reshape(active.size, n) if solver == "sor" else step.x().reshape(active.size, n)
        active = active[~stopped]
    return result


def _lexicographic(A, b, x, omega):
    sweep = SORSweep(A, omega, kernel="pyamg")

    def step():
        sweep.forward(x, b)
        return b - sweep.A @ x
    return step


def _redblack(A, b, x, omega, S, n):
    """:func:`bbopt.linsolve.redblack_sor`'s loop body, one call per sweep (``step.x()``: the iterate).
    Colours: grid parity when the systems are m×m grids with m even (stacked, the parity
    continues), else from A's graph — either way the first point of each system is red."""
    m = int(round(np.sqrt(n)))
    split = RedBlackSplit(A, (S * m, m)) if m * m == n and m % 2 == 0 else RedBlackSplit(A)
    w = float(omega)
    b_r, b_b = b[split.red], b[split.black]
    x_r, x_b = x[split.red].copy(), x[split.black].copy()
    wd_r, wd_b = w / split.d_r, w / split.d_b
    Eb = split.E @ x_b

    def step():
        nonlocal Eb
        x_r.__imul__(1.0 - w)
        x_r.__iadd__(wd_r * (b_r + Eb))
        Er = split.Et @ x_r
        x_b.__imul__(1.0 - w)
        x_b.__iadd__(wd_b * (b_b + Er))
        Eb = split.E @ x_b
        r = np.empty(split.n)
        r[split.red], r[split.black] = b_r + Eb - split.d_r * x_r, b_b + Er - split.d_b * x_b
        return r

    def current():
        out = np.empty(split.n)
        out[split.red], out[split.black] = x_r, x_b
        return out
    step.x = current
    return step


def stream_table(problem, T: int, tag: str) -> np.ndarray:
    """Iterations ``(T, d)`` of every arm of ``problem`` (an i.i.d. ``SORSequenceProblem`` with solver
    ``sor`` or ``redblack``) on its systems 0..T−1, cached under ``runs/sor_tables`` by ``tag`` (it must
    name what ``describe()`` does not, e.g. the stream seed) and the problem's description."""
    key = hashlib.sha1(json.dumps([problem.describe(), problem.tol, problem.maxiter],
                                  sort_keys=True, default=str).encode()).hexdigest()[:12]
    for path in sorted(CACHE.glob(f"{tag}-{key}-T*.npy")):  # a longer table of the same stream will do
        if int(path.stem.rsplit("-T", 1)[1]) >= T:
            return np.load(path)[:T]
    path = CACHE / f"{tag}-{key}-T{T}.npy"
    systems = [problem.stream.instance(t) for t in range(T)]
    As, bs = [s.A for s in systems], np.stack([np.asarray(s.b, dtype=float) for s in systems])
    table = np.stack([arm_iterations(As, bs, w, problem.solver, problem.tol, problem.maxiter)
                      for w in problem.space.values], axis=1)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, table)
    return table


def check(problem, table: np.ndarray, n: int = 40, seed: int = 0) -> tuple[int, int]:
    """(agreeing, checked): ``n`` random (system, arm) pairs of ``table`` re-solved by the problem's solver."""
    rng = np.random.default_rng(seed)
    rows, arms = rng.integers(0, table.shape[0], n), rng.integers(0, table.shape[1], n)
    same = sum(problem.solve(problem.stream.instance(int(t)), problem.space.values[int(a)])[0].iterations
               == table[t, a] for t, a in zip(rows, arms))
    return int(same), n
