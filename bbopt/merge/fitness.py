"""Fitness of a merged model, any kind: labelled tasks, a user's callable, perplexity; racing.

:func:`as_fitness` turns what a user passes as ``fitness=`` into an object with
``loss(model, fraction) -> float`` (minimised) and ``scores(model) -> dict`` (reported):
:class:`TaskFitness` (a list of :class:`Task`), :class:`CallableFitness` (``fn(model)`` or
``fn(model, fraction)``) or :class:`bbopt.merge.perplexity.Perplexity` (causal LMs).

A :class:`Task` is a labelled set (inputs: a tensor ``(n, ...)`` or a dict of such tensors;
labels ``(n,)``) with the call that turns a model and inputs into logits ``(n, C)``. A
merged model's loss is the mean over tasks of the per-task mean cross-entropy (default,
smooth) or error rate (``metric="accuracy"``). Racing (EvoPress's multi-step selection,
Sieberling et al., ICML 2025): score every candidate on the first ``fraction`` of each
task, re-score the best ``keep`` on more, the last stage on all of it; so data should be
shuffled when tasks are built (the builders here do).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bbopt.options import OptionError, one_of

METRICS = ("ce", "accuracy")


@dataclass
class Task:
    """A labelled set. ``forward(model, inputs) -> logits``; default ``model(inputs)``."""

    name: str
    inputs: Any
    labels: torch.Tensor
    forward: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None
    batch_size: int = 512

    def __post_init__(self) -> None:
        self.labels = torch.as_tensor(self.labels).long().reshape(-1)
        n = self.labels.numel()
        for key, t in _tensors(self.inputs):
            if t.shape[0] != n:
                raise ValueError(f"task {self.name!r}: inputs{key} has {t.shape[0]} rows but there are {n} labels")

    def __len__(self) -> int:
        return int(self.labels.numel())

    def head(self, n: int) -> Task:
        """The first ``n`` examples (the racing subsets)."""
        return Task(self.name, _slice(self.inputs, 0, n), self.labels[:n], self.forward, self.batch_size)

    def logits(self, model: torch.nn.Module) -> torch.Tensor:
        """Logits ``(n, C)`` in batches of ``batch_size``, no autograd."""
        outs = []
        with torch.inference_mode():
            for a in range(0, len(self), self.batch_size):
                x = _slice(self.inputs, a, a + self.batch_size)
                outs.append(model(x) if self.forward is None else self.forward(model, x))
        return torch.cat(outs).float()

    def row_hashes(self) -> list[int]:
        """One hash per example's inputs, trailing zeros (padding) ignored: for overlap checks."""
        parts = [(key, t.reshape(t.shape[0], -1).cpu().numpy()) for key, t in _tensors(self.inputs)]
        out = []
        for i in range(len(self)):
            row = []
            for key, p in parts:
                nz = np.flatnonzero(p[i])
                row.append((key, p[i][: nz[-1] + 1 if nz.size else 0].tobytes()))
            out.append(hash(tuple(row)))
        return out

    def fingerprints(self) -> set[int]:
        return set(self.row_hashes())

    def without(self, seen: set[int]) -> Task:
        """The examples whose inputs are not in ``seen`` (fingerprints of other splits)."""
        keep = torch.as_tensor([h not in seen for h in self.row_hashes()], dtype=torch.bool)
        return Task(self.name, _select(self.inputs, keep), self.labels[keep], self.forward, self.batch_size)


def as_tasks(tasks: Task | Sequence[Task] | None, what: str) -> list[Task]:
    if tasks is None:
        return []
    tasks = [tasks] if isinstance(tasks, Task) else list(tasks)
    if not all(isinstance(t, Task) for t in tasks):
        raise TypeError(f"{what} must be a Task or a list of Tasks (bbopt.merge.fitness.Task)")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: task names must be unique, got {names}")
    return tasks


class TaskFitness:
    """Labelled tasks: loss = mean over tasks of the cross-entropy (``metric="ce"``) or of the
    error rate (``"accuracy"``); a racing ``fraction`` scores the first part of each task."""

    def __init__(self, tasks: Task | Sequence[Task], what: str = "fitness", metric: str = "ce"):
        one_of(metric, "metric", what, METRICS)
        self.tasks = as_tasks(tasks, what)
        if not self.tasks:
            raise ValueError(f"{what}: needs at least one Task")
        self.metric = metric
        self.racing = True

    def part(self, fraction: float) -> list[Task]:
        if fraction >= 1:
            return self.tasks
        return [t.head(max(1, int(np.ceil(fraction * len(t))))) for t in self.tasks]

    def size(self, fraction: float = 1.0) -> int:
        """Examples scored at ``fraction`` (what racing saves shows here)."""
        return sum(len(t) for t in self.part(fraction))

    def loss(self, model: torch.nn.Module, fraction: float = 1.0) -> float:
        return loss_on(model, self.part(fraction), self.metric)

    def scores(self, model: torch.nn.Module) -> dict:
        return score(model, self.tasks)


class CallableFitness:
    """A user's ``fn(model) -> float``: lower is better unless ``maximize``.

    Racing calls ``fn(model, fraction)`` with ``fraction`` in (0, 1]: score the model on that
    leading part of your data (1 = all of it; shuffle the data once, beforehand, so every
    part is representative). A callable whose second parameter is missing cannot be raced.
    An exception it raises fails that candidate under the run's ``on_error`` policy.
    """

    def __init__(self, fn: Callable[..., float], maximize: bool = False, what: str = "fitness"):
        if not callable(fn):
            raise TypeError(f"{what} must be callable, got {type(fn).__name__}")
        self.fn, self.maximize = fn, bool(maximize)
        self.name = getattr(fn, "__qualname__", type(fn).__name__)
        self.racing = _takes_two(fn)

    def size(self, fraction: float = 1.0) -> int:
        return 1

    def value(self, model: torch.nn.Module, fraction: float = 1.0) -> float:
        out = self.fn(model, fraction) if self.racing else self.fn(model)
        try:
            return float(out)
        except (TypeError, ValueError):
            raise TypeError(f"fitness {self.name} must return a number, got {type(out).__name__}") from None

    def loss(self, model: torch.nn.Module, fraction: float = 1.0) -> float:
        v = self.value(model, fraction)
        return -v if self.maximize else v

    def scores(self, model: torch.nn.Module) -> dict:
        return {"value": self.value(model), "maximize": self.maximize}


def as_fitness(fitness: Any, what: str = "fitness", metric: str | None = None,
               maximize: bool | None = None) -> Any:
    """A fitness object from Tasks, a callable or an object with ``loss``/``scores``.

    ``metric`` applies to Tasks only and ``maximize`` to callables only; passing one to a
    fitness that does not use it is an error.
    """
    if is_tasks(fitness):
        if maximize is not None:
            raise OptionError("maximize", f"{what}: maximize is for callable fitness; Tasks are scored by metric")
        return TaskFitness(fitness, what, metric or "ce")
    if metric is not None:
        raise OptionError("metric", f"{what}: metric is for Task fitness only (got {type(fitness).__name__}); "
                                    "remove it")
    if hasattr(fitness, "loss") and hasattr(fitness, "scores"):
        if maximize is not None:
            raise OptionError("maximize", f"{what}: maximize is for callable fitness only; remove it")
        return fitness
    if callable(fitness):
        return CallableFitness(fitness, bool(maximize), what)
    raise TypeError(f"{what} must be a Task, a list of Tasks, a callable fitness(model) -> float or a "
                    f"Perplexity, got {type(fitness).__name__}")


def is_tasks(obj: Any) -> bool:
    """A Task or a non-empty list of Tasks."""
    return isinstance(obj, Task) or (isinstance(obj, (list, tuple)) and len(obj) > 0
                                     and all(isinstance(t, Task) for t in obj))


def _takes_two(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` accepts a second positional argument (the racing fraction)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) >= 2


def score(model: torch.nn.Module, tasks: Sequence[Task]) -> dict:
    """``{"ce", "accuracy", "tasks": {name: {"ce", "accuracy", "n"}}}``, means over tasks."""
    per = {}
    for t in tasks:
        logits = t.logits(model)
        ce = float(F.cross_entropy(logits, t.labels))
        acc = float((logits.argmax(1) == t.labels).float().mean())
        per[t.name] = {"ce": ce if np.isfinite(ce) else float("nan"), "accuracy": acc, "n": len(t)}
    return {"ce": float(np.mean([v["ce"] for v in per.values()])),
            "accuracy": float(np.mean([v["accuracy"] for v in per.values()])), "tasks": per}


def loss_on(model: torch.nn.Module, tasks: Sequence[Task], metric: str) -> float:
    """The minimised loss straight from the logits (what ``evaluate`` needs, nothing more)."""
    total = 0.0
    for t in tasks:
        logits = t.logits(model)
        if metric == "ce":
            total += float(F.cross_entropy(logits, t.labels))
        else:
            total += 1.0 - float((logits.argmax(1) == t.labels).float().mean())
    return total / len(tasks)


def loss_of(scores: dict, metric: str) -> float:
    """The minimised loss: cross-entropy, or error rate for ``metric="accuracy"``."""
    return scores["ce"] if metric == "ce" else 1.0 - scores["accuracy"]


def overlap(a: Sequence[Task], b: Sequence[Task]) -> int:
    """How many examples of ``a`` also appear (same inputs) in ``b``."""
    seen: set[int] = set()
    for t in b:
        seen |= t.fingerprints()
    return sum(len(t.fingerprints() & seen) for t in a)


def check_racing(racing: Any) -> list[tuple[float, int]] | None:
    """``[[fraction, keep], ...]`` with increasing fractions in (0, 1) and decreasing keeps."""
    if racing is None:
        return None
    try:
        stages = [(float(f), int(k)) for f, k in racing]
    except (TypeError, ValueError):
        raise OptionError("racing", f"racing must be a list of [fraction, keep] pairs, got {racing!r}") from None
    fracs = [f for f, _ in stages]
    keeps = [k for _, k in stages]
    if not stages or not all(0 < f < 1 for f in fracs) or fracs != sorted(set(fracs)):
        raise OptionError("racing", f"racing: fractions must increase strictly within (0, 1), got {fracs}")
    if not all(k >= 1 for k in keeps) or keeps != sorted(keeps, reverse=True):
        raise OptionError("racing", f"racing: keep counts must be ≥ 1 and non-increasing, got {keeps}")
    return stages


def race(evaluate: Callable[[int, float], float], n: int, stages: list[tuple[float, int]] | None) -> np.ndarray:
    """Losses of ``n`` candidates; ``evaluate(i, fraction)`` scores candidate i on a fraction.

    Without stages every candidate is scored on all data. With stages, a candidate that drops
    out at a stage keeps its loss there, shifted up (if needed) so that it never ranks above a
    candidate that survived that stage: the ranking a strategy sees is the race's, and the best
    loss of a batch always comes from the full data.
    """
    plan = (stages or []) + [(1.0, n)]
    alive = np.arange(n)
    losses = np.full(n, np.nan)
    dropped: list[np.ndarray] = []
    for fraction, keep in plan:
        for i in alive:
            losses[i] = evaluate(int(i), fraction)
        order = np.argsort(np.where(np.isfinite(losses[alive]), losses[alive], np.inf), kind="stable")
        dropped.append(alive[order[max(1, keep):]])
        alive = alive[order[: max(1, keep)]]
    ahead = alive
    for out in reversed(dropped[:-1]):
        if out.size:
            worst_ahead = np.nanmax(losses[ahead]) if np.isfinite(losses[ahead]).any() else -np.inf
            losses[out] += max(0.0, worst_ahead - np.nanmin(losses[out]))
            ahead = np.concatenate([ahead, out])
    return losses


def _tensors(inputs: Any, key: str = "") -> Iterable[tuple[str, torch.Tensor]]:
    if isinstance(inputs, dict):
        for k, v in inputs.items():
            yield from _tensors(v, f"{key}[{k!r}]")
    elif torch.is_tensor(inputs):
        yield key, inputs
    else:
        raise TypeError(f"task inputs must be a tensor or a dict of tensors, got {type(inputs).__name__}")


def _select(inputs: Any, mask: torch.Tensor) -> Any:
    if isinstance(inputs, dict):
        return {k: _select(v, mask) for k, v in inputs.items()}
    return inputs[mask]


def _slice(inputs: Any, a: int, b: int) -> Any:
    if isinstance(inputs, dict):
        return {k: _slice(v, a, b) for k, v in inputs.items()}
    return inputs[a:b]
