"""CMA-ES through the ``cma`` package (Hansen's pycma), with optional IPOP restarts.

On a bounded Box the search runs in the unit cube with pycma's ``BoundTransform`` (so
``sigma0`` is a fraction of the box width); on an unbounded Box it runs in the original
coordinates. pycma samples through our seeded generator (``randn`` option; its global
``np.random`` seeding is switched off), so runs are reproducible and resume exactly by
replaying the ask/tell log. Candidates may be told in any order and in parts: a
generation goes to pycma once all of its members are back. Asking more before a generation
is told draws more samples of the same distribution into it (pycma takes one tell per ask):
rounds of n candidates (the run's ``round_size``) that straddle λ give generations of
⌈λ/n⌉·n members, and two asks before a tell give one update of 2λ.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from bbopt.optimizer import Optimizer
from bbopt.options import OptionError, integer, nonnegative, number_in, one_of, point, positive
from bbopt.seeding import SeedLike
from bbopt.spaces import Box

with warnings.catch_warnings():  # pycma warns at import when matplotlib (an optional extra) is absent
    warnings.filterwarnings("ignore", message="Could not import matplotlib", category=UserWarning)
    import cma

#: pycma stop criteria that mean "converged or stuck": the trigger for an IPOP restart.
_IGNORED_STOPS = {"callback"}
_BOUND_HANDLERS = {"transform": cma.BoundTransform, "penalty": cma.BoundPenalty}


def _check_cma_options(options: dict | None) -> dict:
    """pycma ``eval``s string option values: accept only plain numbers, booleans and lists."""
    if options is not None and not isinstance(options, dict):
        raise OptionError("cma_options", f"cma: cma_options must be a mapping of pycma options, got {options!r}")
    options = dict(options or {})
    known = cma.CMAOptions()
    for key, value in options.items():
        if key not in known:
            raise OptionError("cma_options", f"cma: unknown pycma option {key!r} in cma_options")
        if not _plain(value):
            raise OptionError("cma_options", f"cma: cma_options.{key} must be a number, boolean or list of numbers "
                                             f"(pycma evaluates strings as code), got {value!r}")
    return options


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float))


class CMA(Optimizer):
    """CMA-ES through pycma, with optional IPOP restarts and sep-CMA. Options:

    - ``sigma0``: initial step size (unit-cube fraction on bounded boxes); default 0.2.
    - ``x0``: start point in the space's coordinates; default the box centre.
    - ``popsize``: λ; default pycma's 4 + ⌊3 ln d⌋.
    - ``restarts``: IPOP restarts after pycma's stop criteria fire (0 disables); each
      restart multiplies λ by ``popsize_factor`` and starts from a uniform random point.
    - ``diagonal``: sep-CMA (diagonal covariance, O(d) per sample); ``"auto"`` uses it
      from d ≥ 200, where full CMA's O(d²) sampling dominates.
    - ``bounds_handling``: ``"transform"`` (pycma's smooth BoundTransform) or ``"penalty"``
      (candidates are clipped to the box and pycma adds an adaptive penalty for the
      distance — reaches optima on the boundary exactly). Either is pycma's own handler
      in the unit cube, candidate for candidate (tests/strategies/test_cma.py); on BBOB a
      hard box costs bbopt what it costs raw pycma given the same bounds (E2), most of it
      on f5, whose optimum lies on the boundary. An objective defined outside the box
      should get a ``soft`` box instead.
    - ``cma_options``: further pycma options passed through (e.g. ``{"tolfun": 1e-12}``);
      numbers, booleans and lists only — pycma evaluates string options as Python code,
      so strings from a config are refused.
    """

    state_by_replay = True

    def __init__(
        self,
        space: Box,
        seed: SeedLike = None,
        sigma0: float = 0.2,
        x0: Any = None,
        popsize: int | None = None,
        restarts: int = 9,
        popsize_factor: float = 2.0,
        diagonal: bool | str = "auto",
        bounds_handling: str = "transform",
        cma_options: dict | None = None,
    ):
        super().__init__(space, seed)
        self.sigma0 = positive(sigma0, "sigma0", "cma")
        self.popsize_factor = number_in(popsize_factor, "popsize_factor", "cma", 1, 100)
        self.popsize = None if popsize is None else integer(popsize, "popsize", "cma", minimum=2, maximum=10**5)
        self.restarts = nonnegative(restarts, "restarts", "cma", integer=True)
        self.x0 = None if x0 is None else point(x0, "x0", "cma", space)
        diagonal = one_of(diagonal, "diagonal", "cma", (True, False, "auto"))
        self.diagonal = (space.dim >= 200) if diagonal == "auto" else diagonal
        self.bounds_handling = one_of(bounds_handling, "bounds_handling", "cma", tuple(_BOUND_HANDLERS))
        self.cma_options = _check_cma_options(cma_options)
        self._unit = space.bounded
        self._reset()

    # ----------------------------------------------------------------- algorithm
    def _reset(self) -> None:
        self.n_restarts = 0
        self._generations: dict[int, dict] = {}
        self._where: dict[int, tuple[int, int]] = {}
        self._queue: list[tuple[int, int]] = []
        self._open: int | None = None  # the generation asked from pycma and not yet told
        self._gen_counter = 0
        x0 = self.space.center if self.x0 is None else self.x0
        self._start(self._to_inner(x0), self.popsize)

    def _start(self, x0_inner: np.ndarray, popsize: int | None) -> None:
        opts: dict[str, Any] = {
            "seed": np.nan,  # never seed or draw from the global np.random
            "randn": lambda *shape: self.rng.standard_normal(size=shape),
            "verbose": -9,
            "verb_log": 0,
            "verb_disp": 0,
            "CMA_diagonal": self.diagonal,
        }
        if self._unit and not self.space.soft:  # a soft box scales the search but does not bound it
            opts["bounds"] = [0.0, 1.0]
            opts["BoundaryHandler"] = _BOUND_HANDLERS[self.bounds_handling]
        if popsize is not None:
            opts["popsize"] = popsize
        opts.update(self.cma_options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.es = cma.CMAEvolutionStrategy(x0_inner, self.sigma0, opts)
        self._es_index = self.n_restarts

    def _to_inner(self, x: np.ndarray) -> np.ndarray:
        return self.space.to_unit(x) if self._unit else np.asarray(x, dtype=float)

    def _to_outer(self, x: np.ndarray) -> np.ndarray:
        if not self._unit:
            return np.asarray(x, dtype=float)
        outer = self.space.from_unit(x)
        return outer if self.space.soft else self.space.clip(outer)

    def _draw(self, k: int | None) -> None:
        """Queue ``k`` more candidates (None: a generation). They join the *open* generation (asked
        from pycma, not yet told) while there is one — pycma takes one tell per ask, and samples
        of the same distribution belong to the same update — else a new generation opens."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self._open is None:
                solutions = self.es.ask()
                g, self._open = self._gen_counter, self._gen_counter
                self._gen_counter += 1
                self._generations[g] = {"es": self._es_index, "X": [], "f": np.zeros(0), "left": 0}
            else:
                g = self._open
                solutions = self.es.ask(number=self.es.popsize if k is None else k)
        gen = self._generations[g]
        start = len(gen["X"])
        gen["X"] = gen["X"] + list(solutions)
        gen["f"] = np.concatenate([gen["f"], np.full(len(solutions), np.nan)])
        gen["left"] += len(solutions)
        self._queue.extend((g, start + k) for k in range(len(solutions)))

    def _ask(self, n: int | None, context: Any) -> np.ndarray:
        if n is None:
            if not self._queue:
                self._draw(None)
            g = self._queue[0][0]
            n = sum(1 for gen, _ in self._queue if gen == g)
        while len(self._queue) < n:
            self._draw(n - len(self._queue))
        taken, self._queue = self._queue[:n], self._queue[n:]
        inner = np.empty((n, self.space.dim))
        for k, (g, pos) in enumerate(taken):
            self._where[self._next_id + k] = (g, pos)
            inner[k] = self._generations[g]["X"][pos]
        return self._to_outer(inner)

    def _tell(self, ids: np.ndarray, x: Any, losses: np.ndarray) -> None:
        for i, loss in zip(ids.tolist(), losses.tolist()):
            g, pos = self._where.pop(i)
            gen = self._generations[g]
            gen["f"][pos] = loss
            gen["left"] -= 1
            if gen["left"] == 0:
                del self._generations[g]
                if gen["es"] == self._es_index:  # results of a pre-restart ES are dropped
                    self._open = None
                    self._update(gen["X"], gen["f"])

    def _update(self, solutions: list, fitness: np.ndarray) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.es.tell(solutions, fitness.tolist())
            if self.n_restarts >= self.restarts:  # pycma's stop() is costly: only asked when it matters
                return
            stop = {k: v for k, v in self.es.stop().items() if k not in _IGNORED_STOPS}
        if stop:
            self._restart(int(round(self.es.popsize * self.popsize_factor)))

    def _restart(self, popsize: int) -> None:
        """IPOP: a new ES with a larger population from a fresh start point."""
        for g, _ in self._queue:  # queued candidates belong to the stopped search
            gen = self._generations[g]
            gen["left"] -= 1
            if gen["left"] == 0:
                del self._generations[g]
        self._queue = []
        self._open = None
        self.n_restarts += 1
        if self._unit:  # restarts from a uniform point of the box (IPOP)
            x0 = self.rng.uniform(0.0, 1.0, self.space.dim)
        else:
            start = self.space.center if self.x0 is None else self.x0
            x0 = start + self.sigma0 * self.rng.standard_normal(self.space.dim)
        self._start(x0, popsize)
