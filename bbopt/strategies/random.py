"""Random search: uniform samples of the space — the baseline every method must beat."""

from __future__ import annotations

from typing import Any

import numpy as np

from bbopt.optimizer import Optimizer
from bbopt.options import integer, point, unused
from bbopt.seeding import SeedLike
from bbopt.spaces import Box, Choice, Space


class RandomSearch(Optimizer):
    """Uniform sampling of a bounded Box or of a Choice's arms. Options:

    - ``popsize``: candidates per ``ask()`` when no ``n`` is given (10).
    - ``x0``: a point of the Box evaluated first (the first candidate of the first ask), so
      random search never ends worse than a known start; Box spaces only.
    """

    supported_spaces = (Box, Choice)
    renamed_options = {"batch_size": "popsize"}

    def __init__(self, space: Space, seed: SeedLike = None, popsize: int = 10, x0: Any = None):
        popsize = integer(popsize, "popsize", "random", minimum=1, maximum=10**6)
        if isinstance(space, Box) and not space.bounded:
            raise ValueError("random: needs a Box with finite bounds")
        if x0 is not None and not isinstance(space, Box):
            raise unused("x0", "random", "on a Choice space (its candidates are arm indices)")
        super().__init__(space, seed)
        self.popsize = popsize
        self.x0 = None if x0 is None else point(x0, "x0", "random", space)

    def _ask(self, n: int | None, context: Any) -> np.ndarray:
        n = n or self.popsize
        if self.x0 is None or self._next_id > 0:
            return self.space.sample(self.rng, n)
        return np.concatenate([self.x0[None, :], self.space.sample(self.rng, n - 1)])

    def _tell(self, ids: np.ndarray, x: Any, losses: np.ndarray) -> None:
        """Nothing to learn: the base already tracks the best."""
