"""A batch of candidates handed out by ``ask`` and handed back to ``tell``.

Every candidate carries an integer id, so results may come back as any subset, in any
order (asynchronous workers, failures). ``np.asarray(batch)`` gives the candidates of an
array space; iterating gives one candidate at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Batch:
    """Candidates ``x`` (an array ``(n, ...)`` or a list of ``n`` objects) and their ids.

    ``context`` is what a contextual strategy was asked with; ``round`` is the loop's ask
    index (problems that present one instance per round use it to pick the instance).
    """

    ids: np.ndarray
    x: Any
    context: Any = None
    round: int | None = None

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64).reshape(-1)
        if len(self.x) != self.ids.size:
            raise ValueError(f"Batch: {self.ids.size} ids for {len(self.x)} candidates")

    def __len__(self) -> int:
        return int(self.ids.size)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.x)

    def __getitem__(self, i: int) -> Any:
        """The ``i``-th candidate (use :meth:`subset` for a sub-batch)."""
        return self.x[i]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.x, dtype=dtype)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Batch:
        """The candidates at ``indices`` (positions in this batch), ids kept."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if isinstance(self.x, np.ndarray):
            x: Any = self.x[idx]
        else:
            x = [self.x[int(i)] for i in idx]
        return Batch(self.ids[idx], x, self.context, self.round)

    def split(self, size: int) -> list[Batch]:
        """Consecutive sub-batches of at most ``size`` candidates."""
        return [self.subset(np.arange(s, min(s + size, len(self)))) for s in range(0, len(self), size)]


def candidates_of(batch: Any) -> Any:
    """The raw candidates of a Batch, or ``batch`` itself when it already is raw."""
    return batch.x if isinstance(batch, Batch) else batch
