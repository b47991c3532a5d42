"""Random search: uniform samples of the space — the baseline every method must beat."""

from __future__ import annotations

from typing import Any

import numpy as np

from bbopt.optimizer import Optimizer
from bbopt.seeding import SeedLike
from bbopt.spaces import Box, Choice, Space


class RandomSearch(Optimizer):
    """Uniform sampling of a bounded Box or of a Choice's arms.

    ``batch_size``: candidates per ``ask()`` when no ``n`` is given.
    """

    supported_spaces = (Box, Choice)

    def __init__(self, space: Space, seed: SeedLike = None, batch_size: int = 10):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 10**6:
            raise ValueError(f"random: batch_size must be an integer in [1, 10^6], got {batch_size!r}")
        if isinstance(space, Box) and not space.bounded:
            raise ValueError("random: needs a Box with finite bounds")
        super().__init__(space, seed)
        self.batch_size = batch_size

    def _ask(self, n: int | None, context: Any) -> np.ndarray:
        return self.space.sample(self.rng, n or self.batch_size)

    def _tell(self, ids: np.ndarray, x: Any, losses: np.ndarray) -> None:
        """Nothing to learn: the base already tracks the best."""
