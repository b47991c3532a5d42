"""The Optimizer protocol, the shared base every strategy builds on, and the registry.

A strategy subclasses :class:`Optimizer` and writes only its algorithm: ``_ask`` (make
candidates) and ``_tell`` (learn from their losses). The base owns the rest once:
candidate ids and partial / out-of-order tells, best-so-far (a non-finite loss is never
the best), non-finite losses replaced by a worst-so-far penalty, counters, the seeded
``numpy.random.Generator`` and ``state_dict`` / ``load_state_dict``.

Strategies whose inner state cannot be written as plain arrays (``cma``, nevergrad) set
``state_by_replay = True``: their state is the seed plus the log of asks and tells, and
loading rebuilds the strategy and replays the log — exact, and no pickle involved.
"""

from __future__ import annotations

import importlib
import inspect
import math
from typing import Any, ClassVar

import numpy as np

from bbopt.batch import Batch
from bbopt.options import check_options, merge_recommended, unknown_name_message
from bbopt.seeding import SeedLike, as_seed_sequence, seed_from_json, seed_to_json
from bbopt.spaces import Box, Space

STATE_VERSION = 1


class Optimizer:
    """Ask/tell base. Subclasses set ``supported_spaces`` and implement ``_ask``/``_tell``.

    ``_ask(n, context)`` returns ``n`` candidates (``n=None``: the strategy's natural batch,
    e.g. a CMA-ES generation). ``_tell(ids, x, losses)`` receives any subset of asked
    candidates, in the order told, with losses made finite unless ``handles_nonfinite``.
    """

    supported_spaces: ClassVar[tuple[type, ...]] = (Box,)
    contextual: ClassVar[bool] = False
    handles_nonfinite: ClassVar[bool] = False
    state_by_replay: ClassVar[bool] = False
    #: a batch is one indivisible step (e.g. a ZO gradient estimate): the loop never
    #: evaluates part of one to fit the budget, it stops instead
    atomic_batches: ClassVar[bool] = False
    #: old option name -> new name (docs/options.md): an old name in a config gets the new one
    renamed_options: ClassVar[dict[str, str]] = {}

    def __init__(self, space: Space, seed: SeedLike = None):
        if not isinstance(space, self.supported_spaces):
            names = ", ".join(t.__name__ for t in self.supported_spaces)
            raise TypeError(
                f"{type(self).__name__} works on {names} spaces, not {type(space).__name__}"
            )
        self.space: Any = space  # subclasses know the concrete type they accept
        self.seed = as_seed_sequence(seed)
        self._reset_base()

    # ----------------------------------------------------------------- public API
    def ask(self, n: int | None = None, context: Any = None) -> Batch:
        """Candidates to evaluate next, as a :class:`Batch` with fresh ids."""
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
            raise ValueError(f"ask: n must be a positive integer or None, got {n!r}")
        x = self._ask(None if n is None else int(n), context)
        ids = np.arange(self._next_id, self._next_id + len(x), dtype=np.int64)
        self._next_id += len(x)
        self._pending.update(zip(ids.tolist(), x))
        if self.state_by_replay and not self._replaying:
            self._events.append(("ask", None if n is None else int(n), context, len(x)))
        return Batch(ids, x, context)

    def tell(self, batch: Batch, losses: Any) -> None:
        """Report the losses of ``batch`` (any subset of asked candidates, any order)."""
        if not isinstance(batch, Batch):
            raise TypeError("tell: pass the Batch returned by ask (or batch.subset(...))")
        values = as_losses(losses, len(batch))
        ids = batch.ids.tolist()
        unknown = [i for i in ids if i not in self._pending]
        if unknown:
            raise ValueError(f"tell: candidate ids {unknown[:5]} were not asked or were already told")
        if len(set(ids)) != len(ids):
            raise ValueError("tell: a batch must not repeat a candidate id")
        x = [self._pending.pop(i) for i in ids]
        x_arr: Any = np.asarray(x) if isinstance(batch.x, np.ndarray) else x
        if self.state_by_replay and not self._replaying:
            self._events.append(("tell", batch.ids.copy(), values.copy()))
        self._update_best(x_arr, values)
        self.n_told += len(values)
        told = values if self.handles_nonfinite else self._finite(values)
        self._tell(batch.ids, x_arr, told)

    def forget(self, batch: Batch) -> None:
        """Drop asked candidates that will never be told (e.g. past the end of the budget)."""
        for i in batch.ids.tolist():
            self._pending.pop(int(i), None)

    @property
    def best(self) -> tuple[Any, float]:
        """``(candidate, loss)`` of the best finite evaluation told so far."""
        return self._best_x, self._best_loss

    @property
    def n_pending(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------ subclass hooks
    def _ask(self, n: int | None, context: Any) -> Any:
        raise NotImplementedError

    def _tell(self, ids: np.ndarray, x: Any, losses: np.ndarray) -> None:
        raise NotImplementedError

    def _reset(self) -> None:
        """Rebuild the algorithm's initial state (replay strategies only)."""
        raise NotImplementedError

    def _algorithm_state(self) -> dict:
        """The algorithm's own state as plain values and arrays (non-replay strategies)."""
        return {}

    def _load_algorithm_state(self, state: dict) -> None:
        pass

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Plain values and arrays only: JSON + array checkpoints, no pickle."""
        state: dict[str, Any] = {
            "version": STATE_VERSION,
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "seed": seed_to_json(self.seed),
        }
        if self.state_by_replay:
            state["events"] = _pack_events(self._events)
            return state
        state.update(
            rng=self.rng.bit_generator.state,
            next_id=self._next_id,
            n_told=self.n_told,
            worst_finite=self._worst_finite,
            best_loss=self._best_loss,
            best_x=None if self._best_x is None else self._candidate_to_state(self._best_x),
            pending_ids=list(self._pending),
            pending_x=[self._candidate_to_state(v) for v in self._pending.values()],
            algorithm=self._algorithm_state(),
        )
        return state

    def load_state_dict(self, state: dict) -> None:
        expected = f"{type(self).__module__}:{type(self).__qualname__}"
        if state.get("class") != expected:
            raise ValueError(f"load_state_dict: state is for {state.get('class')}, not {expected}")
        self.seed = seed_from_json(state["seed"])
        self._reset_base()
        if self.state_by_replay:
            self._reset()
            self._replay(_unpack_events(state["events"]))
            return
        self.rng.bit_generator.state = state["rng"]
        self._next_id = int(state["next_id"])
        self.n_told = int(state["n_told"])
        self._worst_finite = float(state["worst_finite"])
        self._best_loss = float(state["best_loss"])
        if state["best_x"] is not None:
            self._best_x = self._candidate_from_state(state["best_x"])
        for i, v in zip(state["pending_ids"], state["pending_x"]):
            self._pending[int(i)] = self._candidate_from_state(v)
        self._load_algorithm_state(state["algorithm"])

    def _candidate_to_state(self, cand: Any) -> Any:
        return np.asarray(cand) if isinstance(self.space, Box) else self.space.to_json(cand)

    def _candidate_from_state(self, value: Any) -> Any:
        return np.asarray(value, dtype=float) if isinstance(self.space, Box) else self.space.from_json(value)

    # -------------------------------------------------------------- internals
    _best_x: Any

    def _reset_base(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self._next_id = 0
        self._pending: dict[int, Any] = {}
        self._best_x = None
        self._best_loss = math.inf
        self._worst_finite = -math.inf
        self.n_told = 0
        self._events: list[tuple] = []
        self._replaying = False

    def _replay(self, events: list[tuple]) -> None:
        self._replaying = True
        try:
            batches: dict[int, Batch] = {}
            for event in events:
                if event[0] == "ask":
                    _, n, context, size = event
                    batch = self.ask(n, context)
                    if len(batch) != size:
                        raise RuntimeError("replay diverged: ask returned another batch size")
                    for pos, i in enumerate(batch.ids):
                        batches[int(i)] = batch.subset([pos])
                else:
                    _, ids, losses = event
                    parts = [batches.pop(int(i)) for i in ids]
                    x = np.concatenate([p.x for p in parts]) if isinstance(parts[0].x, np.ndarray) else [
                        c for p in parts for c in p.x]
                    self.tell(Batch(ids, x), losses)
        finally:
            self._replaying = False
        self._events = list(events)

    def _update_best(self, x: Any, values: np.ndarray) -> None:
        finite = np.isfinite(values)
        if not finite.any():
            return
        self._worst_finite = max(self._worst_finite, float(values[finite].max()))
        i = int(np.argmin(np.where(finite, values, np.inf)))
        if values[i] < self._best_loss:
            self._best_loss = float(values[i])
            self._best_x = np.array(x[i], copy=True) if isinstance(x, np.ndarray) else x[i]

    def _finite(self, values: np.ndarray) -> np.ndarray:
        """Non-finite losses become a penalty worse than every finite loss seen so far."""
        bad = ~np.isfinite(values)
        if not bad.any():
            return values
        worst = self._worst_finite
        penalty = worst + 1.0 + abs(worst) if math.isfinite(worst) else 1e30
        return np.where(bad, penalty, values)


def as_losses(losses: Any, n: int) -> np.ndarray:
    """Losses as a float array ``(n,)``; accepts lists, arrays and torch tensors."""
    if hasattr(losses, "detach"):
        losses = losses.detach().cpu().numpy()
    try:
        values = np.asarray(losses, dtype=float).reshape(-1)
    except (TypeError, ValueError) as err:
        raise TypeError(f"losses must be numbers, got {type(losses).__name__}: {err}") from None
    if values.size != n:
        raise ValueError(f"expected {n} losses (one per candidate), got {values.size}")
    return values


def _pack_events(events: list[tuple]) -> dict:
    asks = [(e[1], e[2], e[3]) for e in events if e[0] == "ask"]
    tells = [e for e in events if e[0] == "tell"]
    return {
        "order": np.array([0 if e[0] == "ask" else 1 for e in events], dtype=np.int8),
        "ask_n": [a[0] for a in asks],
        "ask_context": [a[1] for a in asks],
        "ask_size": [a[2] for a in asks],
        "tell_sizes": np.array([len(e[1]) for e in tells], dtype=np.int64),
        "tell_ids": np.concatenate([e[1] for e in tells]) if tells else np.zeros(0, np.int64),
        "tell_losses": np.concatenate([e[2] for e in tells]) if tells else np.zeros(0),
    }


def _unpack_events(packed: dict) -> list[tuple]:
    events: list[tuple] = []
    n_ask = n_tell = offset = 0
    sizes = np.asarray(packed["tell_sizes"], dtype=np.int64)
    ids = np.asarray(packed["tell_ids"], dtype=np.int64)
    losses = np.asarray(packed["tell_losses"], dtype=float)
    for kind in np.asarray(packed["order"]).tolist():
        if kind == 0:
            events.append(("ask", packed["ask_n"][n_ask], packed["ask_context"][n_ask], packed["ask_size"][n_ask]))
            n_ask += 1
        else:
            size = int(sizes[n_tell])
            events.append(("tell", ids[offset:offset + size], losses[offset:offset + size]))
            offset += size
            n_tell += 1
    return events


# ----------------------------------------------------------------- registry
#: name -> "module:Class"; imported on first use so ``import bbopt`` stays light.
OPTIMIZERS: dict[str, str] = {
    "random": "bbopt.strategies.random:RandomSearch",
    "cma": "bbopt.strategies.cma:CMA",
    "nevergrad": "bbopt.strategies.nevergrad:Nevergrad",
    "optuna": "bbopt.strategies.optuna:Optuna",
    "rducb": "bbopt.strategies.bo.rducb:RDUCB",
    "gp-ucb": "bbopt.strategies.bo.gp_ucb:GPUCB",
    "turbo": "bbopt.strategies.bo.turbo:TuRBO",
    "mezo": "bbopt.strategies.zo.mezo:MeZO",
    "cge": "bbopt.strategies.zo.cge:CGE",
    "forward-gradient": "bbopt.strategies.zo.forward:ForwardGradient",
    "likelihood-ratio": "bbopt.strategies.zo.lr:LikelihoodRatio",
    "fzoo": "bbopt.strategies.zo.fzoo:FZOO",
    "hizoo": "bbopt.strategies.zo.hizoo:HiZOO",
    "lozo": "bbopt.strategies.zo.lozo:LOZO",
    "subzero": "bbopt.strategies.zo.subzero:SubZero",
    "block": "bbopt.strategies.block:BlockCoordinate",
    "exp3": "bbopt.strategies.bandit.exp3:Exp3",
    "tsallis-inf": "bbopt.strategies.bandit.tsallis_inf:TsallisINF",
    "igw": "bbopt.strategies.bandit.igw:IGW",
    "chebcb": "bbopt.strategies.bandit.contextual:ChebCB",
    "tsallis-inf-cb": "bbopt.strategies.bandit.contextual:TsallisINFCB",
}


def optimizer_class(name: str) -> type[Optimizer]:
    """The class registered as ``name``, or loaded from ``"module:Class"``."""
    if not isinstance(name, str):
        raise TypeError(f"optimizer name must be a string, got {type(name).__name__}")
    target = OPTIMIZERS.get(name)
    if target is None and ":" not in name:
        raise ValueError(unknown_name_message("optimizer", name, OPTIMIZERS))
    module_name, _, attr = (target or name).partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"optimizer {name!r} could not be loaded: {err}") from None
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise TypeError(f"optimizer {name!r} is not an Optimizer subclass")
    return cls


def make_optimizer(name: str, space: Space, seed: SeedLike = None, **options: Any) -> Optimizer:
    """Build a registered optimizer; unknown options raise naming the valid ones."""
    cls = optimizer_class(name)
    check_options(cls, options, f"optimizer {name!r}")
    return cls(space, seed=seed, **options)


def recommended_options(problem: Any, name: str) -> dict:
    """What ``problem`` declares for the strategy registered as ``name`` (``{}`` if nothing):
    e.g. the prompt-tuning problem's CMA-ES σ₀ and population, which its projections are
    scaled for. A problem declares them with ``recommended_options(name) -> dict``."""
    declare = getattr(problem, "recommended_options", None)
    if declare is None:
        return {}
    recommended = declare(name)
    if not isinstance(recommended, dict):
        raise TypeError(f"{type(problem).__name__}.recommended_options({name!r}) must return a dict, "
                        f"got {type(recommended).__name__}")
    return recommended


def run_defaults(name: str, options: dict, problem: Any, budget: int) -> dict:
    """The options a run builds strategy ``name`` with: the user's ``options`` over what the
    problem recommends for that strategy (key by key, nested mappings too), then what the
    run fills in when neither set it: the run's ``budget`` for strategies that plan with
    one, the problem's start point ``problem.x0`` for strategies that take an ``x0`` (e.g.
    a merge genome's 0.5 weights), and the problem's ``context_range`` for contextual
    bandits (e.g. the shifts of a stream of systems)."""
    params = inspect.signature(optimizer_class(name)).parameters
    filled = merge_recommended(recommended_options(problem, name), options)
    if "budget" in params and "budget" not in filled:
        filled["budget"] = budget
    start = getattr(problem, "x0", None)
    if "x0" in params and "x0" not in filled and start is not None:
        filled["x0"] = np.asarray(start, dtype=float).tolist()
    contexts = getattr(problem, "context_range", None)
    if "context_range" in params and filled.get("context_range") is None and contexts is not None:
        filled["context_range"] = [float(c) for c in contexts]
    return filled
