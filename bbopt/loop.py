"""``minimize``: the one loop — ask, evaluate, tell, record, checkpoint, stop.

The loop owns the budget (in evaluations: for torch problems one evaluation is one
forward of one mini-batch), the clock, the failure policy and the seeding; strategies own
only their algorithm. With a run directory the history streams to disk and a checkpoint
is written every ``checkpoint_every`` seconds; ``resume=True`` continues from it to the
same result an uninterrupted run gives, reusing evaluations recorded after the checkpoint
instead of recomputing them.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bbopt.batch import Batch
from bbopt.evaluation import Evaluator, Outcomes
from bbopt.optimizer import Optimizer, make_optimizer, run_defaults
from bbopt.options import OptionError, number, one_of, positive
from bbopt.problem import as_problem
from bbopt.results import History, Result, RunDir
from bbopt.seeding import SeedLike, as_seed_sequence, child_seed, seed_to_json


@dataclass
class RoundInfo:
    """What a callback sees after each round (one ask → evaluate → tell)."""

    round: int
    n_evals: int
    batch: Batch
    outcomes: Outcomes
    best_loss: float
    best_x: Any
    elapsed: float
    optimizer: Any
    problem: Any


Callback = Callable[[RoundInfo], Any]


def minimize(
    problem: Any,
    optimizer: str | Optimizer,
    budget: int,
    *,
    space: Any = None,
    vectorized: bool = False,
    seed: SeedLike = None,
    options: dict | None = None,
    round_size: int | None = None,
    target: float | None = None,
    target_gap: float | None = None,
    time_limit: float | None = None,
    callbacks: Sequence[Callback] = (),
    n_jobs: int = 1,
    eval_timeout: float | None = None,
    executor: Any = None,
    on_error: str = "raise",
    on_nan: str = "worst",
    run_dir: str | Path | None = None,
    resume: bool = False,
    checkpoint_every: float = 5.0,
    progress: bool | str = "auto",
    record_x: bool | str = "auto",
    description: dict | None = None,
) -> Result:
    """Minimise ``problem`` (a Problem, or a callable with ``space=``) within ``budget`` evaluations.

    ``optimizer`` is a registered name (built with ``options`` and a child of ``seed``,
    ``budget`` filled in for strategies that take one) or an Optimizer object. Stops on
    the budget, ``target`` (or ``optimum + target_gap``), ``time_limit`` seconds, or a
    callback returning True. ``round_size`` is how many candidates each round asks and
    evaluates (default: the strategy's own batch, e.g. its ``popsize``). ``n_jobs``
    evaluates on that many worker processes (loky); ``executor`` on any ``submit()``-style
    executor (e.g. a ``dask.distributed.Client``); ``eval_timeout`` fails an evaluation that
    runs longer (it then runs in a worker). Problems that declare
    ``evaluate_has_side_effects`` are evaluated in the main process: ``n_jobs``,
    ``executor`` and ``eval_timeout`` raise an :class:`~bbopt.options.OptionError` for them.
    """
    problem = as_problem(problem, space, vectorized)
    budget = positive(budget, "budget", integer=True)
    stop_at = _target(problem, target, target_gap)
    seq = as_seed_sequence(seed)
    optimizer = _build_optimizer(optimizer, problem, seq, options or {}, budget, seed)
    loop = _Loop(problem, optimizer, budget, stop_at, time_limit, list(callbacks), round_size)
    evaluator = Evaluator(problem, on_error=on_error, on_nan=on_nan, n_jobs=n_jobs, timeout=eval_timeout,
                          executor=executor)
    run = RunDir(run_dir) if run_dir is not None else None
    if run is not None:
        info = description or {"problem": _describe(problem), "optimizer": type(optimizer).__name__}
        run.create({**info, "budget": budget, "seed": seed_to_json(seq)}, resume=resume)
        if resume:
            loop.restore(run)
    loop.record_x = _record_x(problem.space, record_x)
    if run is not None and not resume:
        loop.checkpoint(run, 0.0)
    try:
        loop.run(evaluator, run, checkpoint_every, _progress_bar(progress, budget, loop.n_evals))
    finally:
        evaluator.close()
        if run is not None:
            run.close()
    result = loop.result(run, seq)
    if run is not None:
        run.finish(result.summary() | {"best_x": _jsonable(problem.space, result.x)})
        if hasattr(problem, "finalize"):  # e.g. save a merged model, score a test split
            problem.finalize(result, run.path)
    return result


class _Loop:
    """The loop's state: counters, best, the in-memory history; one method per phase."""

    def __init__(self, problem: Any, optimizer: Any, budget: int, stop_at: float | None,
                 time_limit: float | None, callbacks: list, round_size: int | None):
        self.problem, self.optimizer, self.budget = problem, optimizer, budget
        self.stop_at, self.time_limit, self.callbacks = stop_at, time_limit, callbacks
        self.round_size = None if round_size is None else positive(round_size, "round_size", integer=True)
        self.n_evals = self.n_failed = self.round = 0
        self.best_loss, self.best_x = math.inf, None
        self.elapsed_before = 0.0
        self.stop_reason = "budget"
        self.records: list[dict] = []
        self.replay: list[dict] = []
        self.record_x = True

    def restore(self, run: RunDir) -> None:
        """Load the checkpoint; evaluations recorded after it are reused, not recomputed."""
        if not run.has_checkpoint:  # killed before its first checkpoint: replay everything
            tail = run.rewind_history(0)
            self.replay = [] if getattr(self.problem, "evaluate_has_side_effects", False) else tail
            return
        state = run.load_checkpoint()
        loop = state["loop"]
        self.optimizer.load_state_dict(state["optimizer"])
        if hasattr(self.problem, "load_state_dict"):
            self.problem.load_state_dict(state.get("problem") or {})
        self.n_evals, self.n_failed, self.round = int(loop["n_evals"]), int(loop["n_failed"]), int(loop["round"])
        self.best_loss = float(loop["best_loss"])
        self.best_x = None if loop["best_x"] is None else self.problem.space.from_json(loop["best_x"])
        self.elapsed_before = float(loop["elapsed"])
        tail = run.rewind_history(self.n_evals)
        self.replay = [] if getattr(self.problem, "evaluate_has_side_effects", False) else tail

    def run(self, evaluator: Evaluator, run: RunDir | None, checkpoint_every: float, bar: Any) -> None:
        t0 = time.monotonic()
        last_checkpoint = t0
        try:
            while not self._should_stop(time.monotonic() - t0):
                batch = self._ask()
                if batch is None:
                    break
                outcomes = self._evaluate(batch, evaluator)
                self.optimizer.tell(batch, outcomes.losses)
                elapsed = self.elapsed_before + time.monotonic() - t0
                new = self._record(batch, outcomes, elapsed)
                info = RoundInfo(self.round - 1, self.n_evals, batch, outcomes, self.best_loss, self.best_x,
                                 elapsed, self.optimizer, self.problem)
                if run is not None:
                    run.append(new)
                    self._log_metrics(run, info)
                else:
                    self.records.extend(new)
                if bar is not None:
                    bar.update(len(batch))
                    bar.set_postfix(best=f"{self.best_loss:.6g}", refresh=False)
                if self._callbacks_stop(info):
                    break
                if run is not None and time.monotonic() - last_checkpoint >= checkpoint_every:
                    self.checkpoint(run, time.monotonic() - t0)
                    last_checkpoint = time.monotonic()
        finally:
            if bar is not None:
                bar.close()
            # saved whatever happened (an evaluation error, Ctrl-C): a resume loses nothing told
            if run is not None and self.optimizer.n_pending == 0:
                self.checkpoint(run, time.monotonic() - t0)
        self.elapsed = self.elapsed_before + time.monotonic() - t0

    def _should_stop(self, elapsed: float) -> bool:
        if self.n_evals >= self.budget:
            self.stop_reason = "budget"
        elif self.stop_at is not None and self.best_loss <= self.stop_at:
            self.stop_reason = "target"
        elif self.time_limit is not None and self.elapsed_before + elapsed >= self.time_limit:
            self.stop_reason = "time_limit"
        else:
            return False
        return True

    def _ask(self) -> Batch | None:
        remaining = self.budget - self.n_evals
        n = None if self.round_size is None else min(self.round_size, remaining)
        context = self.problem.context(self.round) if hasattr(self.problem, "context") else None
        batch = self.optimizer.ask(n, context) if context is not None else self.optimizer.ask(n)
        batch.round = self.round
        if len(batch) > remaining:
            if getattr(self.optimizer, "atomic_batches", False):
                self._drop_pending(batch)
                self.stop_reason = "budget"
                return None
            self._drop_pending(batch.subset(np.arange(remaining, len(batch))))
            batch = batch.subset(np.arange(remaining))
        return batch

    def _drop_pending(self, batch: Batch) -> None:
        """Candidates the budget cannot pay for are forgotten, so a checkpoint has none pending."""
        if hasattr(self.optimizer, "forget"):
            self.optimizer.forget(batch)

    def _evaluate(self, batch: Batch, evaluator: Evaluator) -> Outcomes:
        k = 0
        while k < min(len(batch), len(self.replay)) and self._same(self.replay[k], batch, k):
            k += 1
        if k == 0:
            self.replay = []
            return evaluator(batch)
        done, self.replay = self.replay[:k], self.replay[k:]
        reused = Outcomes(np.array([np.nan if r["loss"] is None else r["loss"] for r in done], dtype=float),
                          [r["status"] for r in done], [r.get("error") for r in done])
        if k == len(batch):
            return reused
        self.replay = []
        return Outcomes.concat([reused, evaluator(batch.subset(np.arange(k, len(batch))))])

    def _same(self, record: dict, batch: Batch, k: int) -> bool:
        """A recorded evaluation is reused only for the very same candidate."""
        if record["id"] != int(batch.ids[k]):
            return False
        return "x" not in record or record["x"] == self.problem.space.to_json(batch.x[k])

    def _record(self, batch: Batch, outcomes: Outcomes, elapsed: float) -> list[dict]:
        space = self.problem.space
        records = []
        for k in range(len(batch)):
            loss, status = float(outcomes.losses[k]), outcomes.status[k]
            if status == "ok" and loss < self.best_loss:
                self.best_loss, self.best_x = loss, batch.x[k]
            rec: dict[str, Any] = {
                "eval": self.n_evals, "id": int(batch.ids[k]), "round": self.round,
                "loss": loss if math.isfinite(loss) else None, "status": status,
                "best": self.best_loss if math.isfinite(self.best_loss) else None,
                "time": round(elapsed, 6),
            }
            if status != "ok":
                self.n_failed += 1
                rec["error"] = outcomes.errors[k] or "non-finite loss"
            if batch.context is not None:
                rec["context"] = _plain(batch.context)
            if self.record_x:
                rec["x"] = space.to_json(batch.x[k])
            records.append(rec)
            self.n_evals += 1
        self.round += 1
        return records

    def _log_metrics(self, run: RunDir, info: RoundInfo) -> None:
        """A training problem's ``round_metrics(info)`` (training loss, dev metrics), a line of
        ``metrics.jsonl``; nothing when it answers None."""
        round_metrics = getattr(self.problem, "round_metrics", None)
        metrics = None if round_metrics is None else round_metrics(info)
        if metrics:
            run.append_metrics({"eval": info.n_evals, "round": info.round, "time": round(info.elapsed, 6),
                                **metrics})

    def _callbacks_stop(self, info: RoundInfo) -> bool:
        if not self.callbacks:
            return False
        if any([bool(cb(info)) for cb in self.callbacks]):
            self.stop_reason = "callback"
            return True
        return False

    def checkpoint(self, run: RunDir, elapsed: float) -> None:
        space = self.problem.space
        loop = {
            "n_evals": self.n_evals, "n_failed": self.n_failed, "round": self.round,
            "best_loss": self.best_loss, "elapsed": self.elapsed_before + elapsed,
            "best_x": None if self.best_x is None else space.to_json(self.best_x),
        }
        state = {"loop": loop, "optimizer": self.optimizer.state_dict()}
        if hasattr(self.problem, "state_dict"):
            state["problem"] = self.problem.state_dict()
        best = {"loss": loop["best_loss"] if math.isfinite(self.best_loss) else None, "x": loop["best_x"],
                "n_evals": self.n_evals}
        run.save_checkpoint(state, best)

    def result(self, run: RunDir | None, seq: np.random.SeedSequence) -> Result:
        history = run.history() if run is not None else History(self.records)
        x = self.best_x
        if x is None and self.optimizer.best[0] is not None:
            x = self.optimizer.best[0]
        return Result(x=x, fun=self.best_loss, n_evals=self.n_evals, n_failed=self.n_failed, n_rounds=self.round,
                      stop_reason=self.stop_reason, elapsed=self.elapsed, history=history,
                      run_dir=None if run is None else run.path, seed=seed_to_json(seq))


def _build_optimizer(optimizer: Any, problem: Any, seq: np.random.SeedSequence, options: dict,
                     budget: int, seed: SeedLike) -> Any:
    if isinstance(optimizer, str):
        options = run_defaults(optimizer, options, problem, budget)
        return make_optimizer(optimizer, problem.space, seed=child_seed(seq, 0), **options)
    if options:
        raise ValueError("options= applies when optimizer is a name; this optimizer is already built")
    if seed is not None:
        raise ValueError("seed= applies when optimizer is a name; this optimizer was built with its own seed")
    if not (hasattr(optimizer, "ask") and hasattr(optimizer, "tell")):
        raise TypeError(f"optimizer must be a name or an ask/tell object, got {type(optimizer).__name__}")
    return optimizer


def _target(problem: Any, target: float | None, target_gap: float | None) -> float | None:
    if target is not None and target_gap is not None:
        raise OptionError("target_gap", "give target or target_gap, not both")
    if target_gap is None:
        return None if target is None else number(target, "target")
    if getattr(problem, "optimum", None) is None:
        raise OptionError("target_gap", "target_gap needs a problem with a declared optimum; use target instead")
    return float(problem.optimum) + number(target_gap, "target_gap")


def _record_x(space: Any, record_x: bool | str) -> bool:
    if one_of(record_x, "record_x", "", (True, False, "auto")) == "auto":  # compact candidates (seeds) say so
        return bool(getattr(space, "compact_candidates", getattr(space, "dim", 1) <= 1000))
    return bool(record_x)


def _progress_bar(progress: bool | str, budget: int, initial: int) -> Any:
    if progress == "auto":
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=budget, initial=initial, unit="eval", dynamic_ncols=True)


def _describe(problem: Any) -> Any:
    return problem.describe() if hasattr(problem, "describe") else type(problem).__name__


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _jsonable(space: Any, x: Any) -> Any:
    return None if x is None else space.to_json(x)
