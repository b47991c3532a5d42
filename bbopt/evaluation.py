"""Evaluating a batch under the run's failure policy, in process or on joblib workers.

Policies (per run): ``on_error="raise"`` stops the run at the first exception (after the
loop has saved what it had), ``"record"`` records the failure with its reason and goes on.
``on_nan="worst"`` records a NaN/inf loss and lets the optimizer treat it as worse than
anything seen; ``"fail"`` makes it an error under ``on_error``. A batch whose evaluation
raises is retried one candidate at a time, so one bad candidate does not fail the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bbopt.batch import Batch
from bbopt.problem import check_losses

ON_ERROR = ("raise", "record")
ON_NAN = ("worst", "fail")


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


def _describe(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}"
    return text if len(text) <= 500 else text[:497] + "..."


def evaluate_chunk(problem: Any, batch: Batch, isolate: bool) -> Outcomes:
    """Evaluate ``batch``; on an exception, retry one by one when ``isolate`` (else report it).

    Runs in the main process or in a joblib worker, so it never raises for the problem's
    own errors: they come back as ``status="error"`` for the caller's policy to handle.
    """
    name = type(problem).__name__
    try:
        losses = check_losses(problem.evaluate(batch), len(batch), name)
        return Outcomes(losses, ["ok"] * len(batch), [None] * len(batch))
    except Exception as err:
        if isolate and len(batch) > 1:
            return Outcomes.concat([evaluate_chunk(problem, batch.subset([k]), False) for k in range(len(batch))])
        return Outcomes(np.full(len(batch), np.nan), ["error"] * len(batch), [_describe(err)] * len(batch))


class Evaluator:
    """Evaluates batches for the loop: in process (``n_jobs=1``) or through joblib."""

    def __init__(
        self,
        problem: Any,
        *,
        on_error: str = "raise",
        on_nan: str = "worst",
        n_jobs: int = 1,
        backend: str | None = None,
    ):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        if on_nan not in ON_NAN:
            raise ValueError(f"on_nan must be one of {ON_NAN}, got {on_nan!r}")
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
            raise ValueError(f"n_jobs must be a positive integer or -1, got {n_jobs!r}")
        self.problem = problem
        self.on_error = on_error
        self.on_nan = on_nan
        self.n_jobs = n_jobs
        self._parallel: Any = None
        if n_jobs != 1 or backend is not None:
            from joblib import Parallel

            self._parallel = Parallel(n_jobs=n_jobs, backend=backend)
            self._parallel.__enter__()  # keep the worker pool for the whole run

    def __call__(self, batch: Batch) -> Outcomes:
        isolate = self.on_error == "record"
        size = getattr(self.problem, "max_batch", None) or len(batch)
        if self._parallel is None:
            parts = [evaluate_chunk(self.problem, chunk, isolate) for chunk in batch.split(size)]
        else:
            from joblib import delayed

            workers = self._parallel.n_jobs if self._parallel.n_jobs > 0 else len(batch)
            size = min(size, max(1, -(-len(batch) // workers)))
            parts = self._parallel(delayed(evaluate_chunk)(self.problem, c, isolate) for c in batch.split(size))
        out = Outcomes.concat(list(parts))
        self._apply_nan_policy(out)
        if self.on_error == "raise":
            for k, status in enumerate(out.status):
                if status == "error":
                    raise EvaluationError(f"evaluation of candidate {int(batch.ids[k])} failed: {out.errors[k]}")
        return out

    def _apply_nan_policy(self, out: Outcomes) -> None:
        for k, (loss, status) in enumerate(zip(out.losses, out.status)):
            if status == "ok" and not np.isfinite(loss):
                if self.on_nan == "worst":
                    out.status[k] = "nan"
                else:
                    out.status[k], out.errors[k] = "error", f"non-finite loss ({loss})"

    def close(self) -> None:
        if self._parallel is not None:
            self._parallel.__exit__(None, None, None)
            self._parallel = None
