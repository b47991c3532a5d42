"""Evaluating a batch under the run's failure policy, in process or in worker processes.

Policies (per run): ``on_error="raise"`` stops the run at the first failure (after the
loop has saved what it had), ``"record"`` records the failure with its reason and goes on.
``on_nan="worst"`` records a NaN/inf loss and lets the optimizer treat it as worse than
anything seen; ``"fail"`` makes it an error under ``on_error``. A batch whose evaluation
raises is retried one candidate at a time, so one bad candidate does not fail the rest.

Worker processes (loky, through joblib's vendored copy) are used when ``n_jobs != 1``,
when an ``executor`` is given (anything with ``submit`` returning futures, e.g. a
``dask.distributed.Client``), or when ``timeout`` is set: an evaluation running longer
than ``timeout`` seconds, or one that kills its worker, is recorded as failed and the
pool is restarted; the other candidates in flight are re-run, never lost.

A problem that declares ``evaluate_has_side_effects`` (a warm-started stream of systems, a
model trained in place, a best-so-far tracker) has one authoritative state: the one in the
main process. A worker evaluates a pickled copy, so its state change would be lost (the
heat stream would be asked for step 1 while still at step 0). Such problems are therefore
always evaluated in the main process, in order, and ``n_jobs``, ``executor`` and
``timeout`` are refused for them (:func:`check_in_process`). A timeout in the main process
(SIGALRM) was considered and rejected: it interrupts the evaluation at an arbitrary point
(between applying and undoing an in-place perturbation, between two columns of a solve
log), so the state it leaves is not guaranteed consistent, and it cannot interrupt compiled
code (a torch kernel, a sparse solve) anyway. Bound such problems' evaluations inside the
problem instead (e.g. a solver's ``maxiter``), or use the run's ``time_limit``.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bbopt.batch import Batch
from bbopt.options import OptionError, integer, one_of, positive
from bbopt.problem import check_losses

ON_ERROR = ("raise", "record")
_MAX_WAIT = 3600.0  # wait in slices: huge timeouts overflow the OS's time_t
ON_NAN = ("worst", "fail")
MAX_JOBS = 1024


class EvaluationError(RuntimeError):
    """An evaluation failed under ``on_error="raise"``; the run is saved and resumable."""


@dataclass
class Outcomes:
    """Per-candidate results of one batch: ``losses`` (NaN where failed), status, reason."""

    losses: np.ndarray
    status: list[str]
    errors: list[str | None]

    @classmethod
    def concat(cls, parts: list[Outcomes]) -> Outcomes:
        return cls(
            np.concatenate([p.losses for p in parts]) if parts else np.zeros(0),
            [s for p in parts for s in p.status],
            [e for p in parts for e in p.errors],
        )

    @classmethod
    def failed(cls, n: int, reason: str) -> Outcomes:
        return cls(np.full(n, np.nan), ["error"] * n, [reason] * n)


def _describe(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}"
    return text if len(text) <= 500 else text[:497] + "..."


def evaluate_chunk(problem: Any, batch: Batch, isolate: bool) -> Outcomes:
    """Evaluate ``batch``; on an exception, retry one by one when ``isolate`` (else report it).

    Runs in the main process or in a worker, so it never raises for the problem's own
    errors: they come back as ``status="error"`` for the caller's policy to handle.
    """
    name = type(problem).__name__
    try:
        losses = check_losses(problem.evaluate(batch), len(batch), name)
        return Outcomes(losses, ["ok"] * len(batch), [None] * len(batch))
    except Exception as err:
        if isolate and len(batch) > 1:
            return Outcomes.concat([evaluate_chunk(problem, batch.subset([k]), False) for k in range(len(batch))])
        return Outcomes.failed(len(batch), _describe(err))


def check_evaluation_options(on_error: Any, on_nan: Any, n_jobs: Any, timeout: Any
                             ) -> tuple[str, str, int, float | None]:
    """The run's evaluation options, checked (an :class:`OptionError` names the bad one).

    ``eval_timeout`` is the option's name in a run (``minimize``, problem files)."""
    one_of(on_error, "on_error", "", ON_ERROR)
    one_of(on_nan, "on_nan", "", ON_NAN)
    n_jobs = integer(n_jobs, "n_jobs")
    if n_jobs != -1 and not 1 <= n_jobs <= MAX_JOBS:
        raise OptionError("n_jobs", f"n_jobs must be an integer in [1, {MAX_JOBS}] or -1 (all cores), got {n_jobs}")
    if timeout is not None:
        timeout = positive(timeout, "eval_timeout")
    return on_error, on_nan, n_jobs, timeout


def check_in_process(problem: Any, n_jobs: int, timeout: float | None, executor: Any = None) -> None:
    """Refuse worker processes for a problem whose evaluations change its state (see the module
    docstring): its state lives in the main process, so it must be evaluated there."""
    if not getattr(problem, "evaluate_has_side_effects", False):
        return
    name = type(problem).__name__
    why = (f"{name} changes its own state when it evaluates (evaluate_has_side_effects), so it is "
           "evaluated in the main process, in order")
    if n_jobs != 1:
        raise OptionError("n_jobs", f"n_jobs must be 1 for {name}, got {n_jobs}: {why}")
    if executor is not None:
        raise OptionError("executor", f"executor cannot be used with {name}: {why}")
    if timeout is not None:
        raise OptionError("eval_timeout", f"eval_timeout cannot be used with {name}: {why}; a timeout needs "
                                          "a worker process it can stop (bound the evaluation inside the "
                                          "problem, or use time_limit)")


class Evaluator:
    """Evaluates batches for the loop under the run's policies."""

    def __init__(self, problem: Any, *, on_error: str = "raise", on_nan: str = "worst", n_jobs: int = 1,
                 timeout: float | None = None, executor: Any = None):
        on_error, on_nan, n_jobs, timeout = check_evaluation_options(on_error, on_nan, n_jobs, timeout)
        check_in_process(problem, n_jobs, timeout, executor)
        self.problem, self.on_error, self.on_nan, self.timeout = problem, on_error, on_nan, timeout
        self.pool: _Pool | None = None
        if executor is not None or n_jobs != 1 or timeout is not None:
            workers = n_jobs if n_jobs > 0 else (os.cpu_count() or 1)
            self.pool = _Pool(workers, executor)

    def __call__(self, batch: Batch) -> Outcomes:
        isolate = self.on_error == "record"
        size = getattr(self.problem, "max_batch", None) or len(batch)
        if self.pool is None:
            out = Outcomes.concat([evaluate_chunk(self.problem, c, isolate) for c in batch.split(size)])
        else:
            if self.timeout is not None:
                size = 1  # a timeout is per evaluation
            else:
                size = min(size, max(1, -(-len(batch) // self.pool.workers)))
            out = self.pool.run(self.problem, batch.split(size), isolate, self.timeout)
        self._apply_nan_policy(out)
        if self.on_error == "raise":
            for k, status in enumerate(out.status):
                if status == "error":
                    raise EvaluationError(f"evaluation of candidate {int(batch.ids[k])} failed: {out.errors[k]}")
        return out

    def _apply_nan_policy(self, out: Outcomes) -> None:
        for k in np.flatnonzero(~np.isfinite(out.losses)).tolist():
            loss, status = out.losses[k], out.status[k]
            if status == "ok":
                if self.on_nan == "worst":
                    out.status[k] = "nan"
                else:
                    out.status[k], out.errors[k] = "error", f"non-finite loss ({loss})"

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


class _Pool:
    """Worker processes with per-evaluation deadlines and recovery from dead workers."""

    def __init__(self, workers: int, executor: Any = None):
        self.workers = workers
        self._user_executor = executor
        self._executor: Any = executor

    def _get(self) -> Any:
        if self._executor is None:
            from joblib.externals.loky import ProcessPoolExecutor

            self._executor = ProcessPoolExecutor(max_workers=self.workers)
            # start the workers now, so a deadline never counts process start-up
            cf.wait([self._executor.submit(os.getpid) for _ in range(self.workers)])
        return self._executor

    def _restart(self) -> None:
        if self._user_executor is None and self._executor is not None:
            self._executor.shutdown(wait=False, kill_workers=True)
            self._executor = None

    def close(self) -> None:
        if self._user_executor is None and self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def run(self, problem: Any, chunks: list[Batch], isolate: bool, timeout: float | None) -> Outcomes:
        """Evaluate ``chunks``; a chunk lost with a dying worker is re-run alone, split into
        single candidates, so only the candidate that kills its worker is recorded as failed."""
        work = [(c, False) for c in chunks]  # (batch, suspect)
        results: dict[int, tuple[float, str, str | None]] = {}  # candidate id -> outcome
        while work:
            suspect = any(flag for _, flag in work)
            running = work[:1] if suspect else (work[: self.workers] if timeout is not None else work)
            done, lost = self._round(problem, [b for b, _ in running], isolate, timeout)
            for batch, out in done:
                results.update(zip(batch.ids.tolist(), zip(out.losses.tolist(), out.status, out.errors)))
            retry: list[tuple[Batch, bool]] = []
            for batch, reason in lost:
                if len(batch) > 1:
                    retry.extend((batch.subset([k]), True) for k in range(len(batch)))
                elif suspect or len(running) == 1:
                    results[int(batch.ids[0])] = (float("nan"), "error", reason)
                else:
                    retry.append((batch, True))
            ran = {id(b) for b, _ in running}
            work = retry + [(b, flag) for b, flag in work if id(b) not in ran]
        order = [i for c in chunks for i in c.ids.tolist()]
        return Outcomes(np.array([results[i][0] for i in order], dtype=float), [results[i][1] for i in order],
                        [results[i][2] for i in order])

    def _round(self, problem: Any, batches: list[Batch], isolate: bool, timeout: float | None
               ) -> tuple[list[tuple[Batch, Outcomes]], list[tuple[Batch, str]]]:
        """Run ``batches`` at once; return the finished ones and the lost ones with a reason."""
        executor = self._get()
        futures = [(executor.submit(evaluate_chunk, problem, b, isolate), b) for b in batches]
        deadline = None if timeout is None else time.monotonic() + timeout
        done: list[tuple[Batch, Outcomes]] = []
        lost: list[tuple[Batch, str]] = []
        pending = list(futures)
        while pending:
            still = []
            for fut, b in pending:
                if not fut.done():
                    still.append((fut, b))
                    continue
                try:
                    done.append((b, fut.result()))
                except Exception as err:  # the worker died (or the executor broke) mid-evaluation
                    first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
                    lost.append((b, f"worker process died during the evaluation ({type(err).__name__}: "
                                    f"{first_line})"))
            pending = still
            if lost:
                lost.extend((b, "lost with a dying worker") for _, b in pending)
                self._restart()
                return done, lost
            if pending and deadline is not None and time.monotonic() >= deadline:
                done.extend((b, Outcomes.failed(len(b), f"timed out after {timeout:g} s")) for _, b in pending)
                self._restart()
                return done, lost
            if pending:
                _wait_any([f for f, _ in pending], deadline)
        return done, lost


def _wait_any(futures: list, deadline: float | None) -> None:
    """Block until one future is done or the deadline passes (any futures with ``done()``)."""
    left = None if deadline is None else min(max(0.0, deadline - time.monotonic()), _MAX_WAIT)
    if all(isinstance(f, cf.Future) for f in futures):
        cf.wait(futures, timeout=left, return_when=cf.FIRST_COMPLETED)
        return
    stop = None if left is None else time.monotonic() + left
    while not any(f.done() for f in futures) and (stop is None or time.monotonic() < stop):
        time.sleep(0.005)
