"""Block-coordinate ("divide and conquer") search: one inner optimizer per block of coordinates.

BBTv2 (Sun et al., EMNLP 2022, arXiv 2205.11200) tunes one prompt per layer with one
CMA-ES per layer: cycle over the layers; each visit runs **one generation** of that
layer's CMA-ES with every other layer fixed at its current best; repeat. Here the blocks
are any partition of a Box's coordinates (a problem declares them as ``space.blocks``,
or ``blocks=`` / ``n_blocks=`` say them), the inner optimizer is any bbopt optimizer by
name (``inner="cma"`` by default, ``"nevergrad"``, ``"random"``, ...), and "best" is the
best full candidate told so far, so the incumbent never gets worse.

Update, per visit to block b: ask inner_b for its natural batch X_b; the candidates are
the incumbent x* with coordinates b replaced by each row of X_b; tell inner_b their
losses; x* ← the best candidate told so far. The state is the visit counter, the queued
and in-flight candidates and every inner optimizer's own state, so resume is exact.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from bbopt.batch import Batch
from bbopt.optimizer import Optimizer, make_optimizer, optimizer_class
from bbopt.options import OptionError, integer, point, positive, unused
from bbopt.seeding import SeedLike, child_seed
from bbopt.spaces import Box, partition


class BlockCoordinate(Optimizer):
    """Cyclic block-coordinate wrapper. Options:

    - ``blocks``: ``[[start, stop], ...]`` index ranges partitioning the coordinates;
      default the space's ``blocks`` attribute, else ``n_blocks`` equal ranges.
    - ``inner`` / ``inner_options``: the optimizer run on each block (a registered name) and
      its options; a ``budget`` option it takes defaults to ⌈budget / n_blocks⌉.
    - ``generations_per_visit``: inner batches asked per visit (BBTv2: 1).
    - ``x0``: the start point (default the box centre): the incumbent until the first
      tell, and each block's part is the inner strategy's ``x0`` where it takes one
      (an ``x0`` in ``inner_options`` is refused: it would be one point for every block).

    Each inner strategy searches its block's part of the box, soft if the box is soft.
    """

    handles_nonfinite = True  # raw losses go to the inner optimizers, which treat NaN themselves

    def __init__(self, space: Box, seed: SeedLike = None, blocks: Any = None, n_blocks: int | None = None,
                 inner: str = "cma", inner_options: dict | None = None, generations_per_visit: int = 1,
                 budget: int | None = None, x0: Any = None):
        super().__init__(space, seed)
        self.generations_per_visit = positive(generations_per_visit, "generations_per_visit", "block", integer=True)
        if inner_options is not None and not isinstance(inner_options, dict):
            raise OptionError("inner_options", "block: inner_options must be a mapping of options, "
                                               f"got {type(inner_options).__name__}")
        if inner_options and "x0" in inner_options:
            raise OptionError("inner_options", "block: give the start point as x0 (the whole vector), not as "
                                               "inner_options.x0; each block gets its part")
        self.blocks = resolve_blocks(space, blocks, n_blocks)
        try:
            params = inspect.signature(optimizer_class(inner)).parameters
        except (TypeError, ValueError) as err:
            raise OptionError("inner", f"block: inner: {err}") from None
        self.inner = inner
        self.inner_options = dict(inner_options or {})
        if budget is not None:
            budget = positive(budget, "budget", "block", integer=True)
            if "budget" in params and "budget" not in self.inner_options:
                self.inner_options["budget"] = math.ceil(budget / len(self.blocks))
        self._inner_takes_x0 = "x0" in params
        self._x0 = space.center.copy() if x0 is None else point(x0, "x0", "block", space)
        try:
            self._reset_blocks()
        except (TypeError, ValueError) as err:
            raise OptionError("inner_options", f"block: inner_options: {err}") from None

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @property
    def current_block(self) -> int | None:
        """The block of the latest visit (None before the first)."""
        return None if self._n_inner_asks == 0 else self._block_of_ask(self._n_inner_asks - 1)

    def _reset_blocks(self) -> None:
        self.inners = []
        for b, (s, e) in enumerate(self.blocks):
            options = dict(self.inner_options, x0=self._x0[s:e].tolist()) if self._inner_takes_x0 else self.inner_options
            self.inners.append(make_optimizer(
                self.inner, Box(self.space.lower[s:e], self.space.upper[s:e], soft=self.space.soft),
                seed=child_seed(self.seed, b), **options))
        self._n_inner_asks = 0
        self._queue: list[tuple[int, int, np.ndarray]] = []  # (block, inner id, full candidate)
        self._route: dict[int, tuple[int, int]] = {}  # outer id -> (block, inner id)

    def _block_of_ask(self, k: int) -> int:
        return (k // self.generations_per_visit) % self.n_blocks

    def _incumbent(self) -> np.ndarray:
        return self._x0 if self._best_x is None else self._best_x

    def _visit(self, context: Any) -> None:
        """One inner batch of the current block, composed with the incumbent elsewhere."""
        b = self._block_of_ask(self._n_inner_asks)
        self._n_inner_asks += 1
        s, e = self.blocks[b]
        batch = self.inners[b].ask(None, context) if context is not None else self.inners[b].ask()
        base = self._incumbent()
        for inner_id, sub in zip(batch.ids.tolist(), np.asarray(batch.x, dtype=float)):
            x = base.copy()
            x[s:e] = sub
            self._queue.append((b, int(inner_id), x))

    # ----------------------------------------------------------------- algorithm
    def _ask(self, n: int | None, context: Any) -> np.ndarray:
        if n is None:
            if not self._queue:
                self._visit(context)
            taken, self._queue = self._queue, []
        else:
            while len(self._queue) < n:
                self._visit(context)
            taken, self._queue = self._queue[:n], self._queue[n:]
        for k, (b, inner_id, _) in enumerate(taken):
            self._route[self._next_id + k] = (b, inner_id)
        return np.stack([x for _, _, x in taken])

    def _tell(self, ids: np.ndarray, x: Any, losses: np.ndarray) -> None:
        per_block: dict[int, tuple[list[int], list[np.ndarray], list[float]]] = {}
        for i, xi, loss in zip(ids.tolist(), np.asarray(x), losses):
            b, inner_id = self._route.pop(int(i))
            s, e = self.blocks[b]
            group = per_block.setdefault(b, ([], [], []))
            group[0].append(inner_id)
            group[1].append(xi[s:e])
            group[2].append(float(loss))
        for b, (inner_ids, sub_x, sub_losses) in per_block.items():
            self.inners[b].tell(Batch(np.asarray(inner_ids), np.asarray(sub_x)), np.asarray(sub_losses))

    def forget(self, batch: Batch) -> None:
        """Candidates that will never be told: the inner optimizers forget them too."""
        for i in batch.ids.tolist():
            route = self._route.pop(int(i), None)
            if route is not None:
                b, inner_id = route
                self.inners[b].forget(Batch(np.array([inner_id]), np.zeros((1, 0))))
        super().forget(batch)

    # ------------------------------------------------------------------- state
    def _algorithm_state(self) -> dict:
        route = sorted(self._route.items())
        return {
            "n_inner_asks": self._n_inner_asks,
            "queue_blocks": np.array([q[0] for q in self._queue], dtype=np.int64),
            "queue_inner_ids": np.array([q[1] for q in self._queue], dtype=np.int64),
            "queue_x": np.array([q[2] for q in self._queue], dtype=float).reshape(-1, self.space.dim),
            "route": np.array([[i, b, j] for i, (b, j) in route], dtype=np.int64).reshape(-1, 3),
            "inner": [opt.state_dict() for opt in self.inners],
        }

    def _load_algorithm_state(self, state: dict) -> None:
        self._reset_blocks()
        for opt, inner_state in zip(self.inners, state["inner"]):
            opt.load_state_dict(inner_state)
        self._n_inner_asks = int(state["n_inner_asks"])
        self._queue = [(int(b), int(j), np.asarray(x, dtype=float)) for b, j, x in
                       zip(state["queue_blocks"], state["queue_inner_ids"], np.asarray(state["queue_x"]))]
        self._route = {int(i): (int(b), int(j)) for i, b, j in np.asarray(state["route"])}


def resolve_blocks(space: Box, blocks: Any, n_blocks: int | None) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` partitioning ``range(space.dim)``; from ``blocks``, ``space.blocks`` or ``n_blocks``."""
    dim = space.dim
    if blocks is None:
        blocks = space.blocks
    if blocks is not None and n_blocks is not None:
        raise unused("n_blocks", "block", "when the blocks are given (blocks= or the space's own blocks)")
    if blocks is None:
        if n_blocks is None:
            raise OptionError("blocks", "block: give blocks=[[start, stop], ...] or n_blocks=, or use a problem "
                                        "whose space declares blocks (e.g. PromptTuningProblem with deep=True)")
        n_blocks = integer(n_blocks, "n_blocks", "block", minimum=1, maximum=dim)
        edges = np.linspace(0, dim, n_blocks + 1).round().astype(int)
        return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
    try:
        return list(partition(blocks if isinstance(blocks, (list, tuple)) else [blocks], dim, "block: blocks"))
    except ValueError as err:
        raise OptionError("blocks", str(err)) from None
