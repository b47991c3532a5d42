"""Search spaces: what a candidate is.

A space validates candidates, samples them from an explicit ``numpy.random.Generator``
and converts them to and from JSON for the run history. Strategies that work on the
unit cube use :meth:`Box.to_unit` / :meth:`Box.from_unit`, so bounds live in one place.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: candidates are dense arrays: a billion-dimensional Box is a typo, not a problem
MAX_DIM = 10**8


class Space:
    """Base of every space; subclasses say how candidates look and how to sample them."""

    def sample(self, rng: np.random.Generator, n: int) -> Any:
        raise NotImplementedError

    def validate(self, candidates: Any) -> Any:
        """Return ``candidates`` in canonical form, or raise ValueError naming the problem."""
        raise NotImplementedError

    def to_json(self, candidate: Any) -> Any:
        """One candidate as a JSON-friendly value (for history lines)."""
        raise NotImplementedError

    def from_json(self, value: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> dict:
        """A JSON description written into the run directory."""
        raise NotImplementedError


class Box(Space):
    """Real vectors in ``[lower, upper]``; a batch of candidates is an array ``(n, d)``.

    ``Box(-5, 5, dim=10)`` broadcasts scalar bounds; ``Box([0, -1], [1, 1])`` takes
    per-dimension bounds. Infinite bounds are allowed but then there is no unit view.
    ``soft=True`` marks the box as the region where the optimum lies, not a constraint
    (the objective is defined outside it, as for BBOB): strategies start and scale their
    search from it but may step outside. ``blocks``: ``[(start, stop), ...]`` index ranges that
    partition the coordinates into groups a problem searches one at a time (BBTv2's one
    prompt per layer; the ``block`` strategy reads them); ``None`` when there is no structure.
    """

    def __init__(self, lower: Any, upper: Any, dim: int | None = None, soft: bool = False,
                 blocks: Sequence[Sequence[int]] | None = None):
        try:
            lower_arr = np.asarray(lower, dtype=float)
            upper_arr = np.asarray(upper, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"Box: lower and upper must be numbers or sequences of numbers, got {lower!r}, "
                             f"{upper!r}") from None
        if lower_arr.ndim > 1 or upper_arr.ndim > 1:
            raise ValueError("Box: lower and upper must be scalars or 1-D sequences")
        if lower_arr.size == 0 or upper_arr.size == 0:
            raise ValueError("Box: lower and upper must not be empty")
        if dim is not None:
            if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= MAX_DIM:
                raise ValueError(f"Box: dim must be an integer in [1, {MAX_DIM:.0e}], got {dim!r}")
            for name, arr in (("lower", lower_arr), ("upper", upper_arr)):
                if arr.size not in (1, int(dim)):
                    raise ValueError(f"Box: {name} has {arr.size} entries but dim is {dim}")
            lower_arr = np.broadcast_to(lower_arr.reshape(-1), (int(dim),)).copy()
            upper_arr = np.broadcast_to(upper_arr.reshape(-1), (int(dim),)).copy()
        lower_arr, upper_arr = np.atleast_1d(lower_arr), np.atleast_1d(upper_arr)
        if lower_arr.shape != upper_arr.shape:
            if lower_arr.size == 1:
                lower_arr = np.full(upper_arr.shape, lower_arr[0])
            elif upper_arr.size == 1:
                upper_arr = np.full(lower_arr.shape, upper_arr[0])
            else:
                raise ValueError(
                    f"Box: lower has {lower_arr.size} entries but upper has {upper_arr.size}"
                )
        if np.isnan(lower_arr).any() or np.isnan(upper_arr).any():
            raise ValueError("Box: lower and upper must not be NaN")
        bad = np.flatnonzero(~(lower_arr < upper_arr))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"Box: lower must be < upper in every dimension; dimension {i} has "
                f"lower={lower_arr[i]} and upper={upper_arr[i]}"
            )
        self.lower = lower_arr
        self.upper = upper_arr
        self.lower.flags.writeable = False
        self.upper.flags.writeable = False
        self._bounded = bool(np.isfinite(lower_arr).all() and np.isfinite(upper_arr).all())
        if not isinstance(soft, bool):
            raise ValueError(f"Box: soft must be true or false, got {soft!r}")
        self.soft = soft
        self.blocks = None if blocks is None else partition(blocks, self.dim, "Box")

    @property
    def dim(self) -> int:
        return int(self.lower.size)

    @property
    def bounded(self) -> bool:
        return self._bounded

    @property
    def center(self) -> np.ndarray:
        """The box centre; 0 (or the finite bound) where a dimension is unbounded."""
        if self.bounded:
            return (self.lower + self.upper) / 2
        lo, hi = np.isfinite(self.lower), np.isfinite(self.upper)
        out = np.zeros(self.dim)
        out[lo & hi] = (self.lower[lo & hi] + self.upper[lo & hi]) / 2
        out[lo & ~hi] = np.maximum(self.lower[lo & ~hi], 0.0)
        out[~lo & hi] = np.minimum(self.upper[~lo & hi], 0.0)
        return out

    @property
    def width(self) -> np.ndarray:
        return self.upper - self.lower

    def _require_bounded(self, what: str) -> None:
        if not self.bounded:
            raise ValueError(f"Box: {what} needs finite bounds in every dimension")

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        """Map points of the box to ``[0, 1]^d`` (the normalised view strategies use)."""
        self._require_bounded("the normalised view")
        return (np.asarray(x, dtype=float) - self.lower) / self.width

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        self._require_bounded("the normalised view")
        return self.lower + np.asarray(u, dtype=float) * self.width

    def clip(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, self.lower, self.upper)

    def contains(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(x)
        return np.all((x >= self.lower) & (x <= self.upper), axis=-1)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        self._require_bounded("uniform sampling")
        return self.lower + rng.random((n, self.dim)) * self.width

    def validate(self, candidates: Any) -> np.ndarray:
        x = np.asarray(candidates, dtype=float)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"Box: expected candidates of shape (n, {self.dim}), got {np.shape(candidates)}"
            )
        return x

    def to_json(self, candidate: Any) -> list:
        return np.asarray(candidate, dtype=float).tolist()

    def from_json(self, value: Any) -> np.ndarray:
        return np.asarray(value, dtype=float)

    def describe(self) -> dict:
        out = {"type": "Box", "lower": self.lower.tolist(), "upper": self.upper.tolist(), "soft": self.soft}
        if self.blocks is not None:
            out["blocks"] = [list(b) for b in self.blocks]
        return out

    def __repr__(self) -> str:
        if np.all(self.lower == self.lower[0]) and np.all(self.upper == self.upper[0]):
            return f"Box({self.lower[0]:g}, {self.upper[0]:g}, dim={self.dim}{', soft=True' if self.soft else ''})"
        return f"Box({self.lower.tolist()}, {self.upper.tolist()}{', soft=True' if self.soft else ''})"


def partition(blocks: Any, dim: int, owner: str) -> tuple[tuple[int, int], ...]:
    """``blocks`` as ``((start, stop), ...)`` in the given order, checked to partition ``0..dim``
    (a ``slice`` counts as its ``(start, stop)``); errors start with ``owner``."""
    out = []
    for blk in blocks:
        if isinstance(blk, slice):
            blk = (blk.start or 0, blk.stop)
        if not (isinstance(blk, (Sequence, np.ndarray)) and len(blk) == 2
                and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in blk)):
            raise ValueError(f"{owner}: each block must be [start, stop] (or a slice), got {blk!r}")
        out.append((int(blk[0]), int(blk[1])))
    ordered = sorted(out)
    if (not ordered or ordered[0][0] != 0 or ordered[-1][1] != dim or any(a >= b for a, b in ordered)
            or any(p[1] != q[0] for p, q in zip(ordered, ordered[1:]))):
        raise ValueError(f"{owner}: blocks {out} must be non-empty ranges that partition 0..{dim} exactly")
    return tuple(out)


class Choice(Space):
    """A finite set of arms; a candidate is an arm *index*, a batch is an int array ``(n,)``.

    ``values`` are what the arms mean (numbers, strings, dicts); problems map an index to
    ``space.values[i]``. :meth:`grid` builds the Cartesian product of named axes.
    """

    def __init__(self, values: Sequence[Any]):
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise ValueError(f"Choice: values must be a sequence, got {type(values).__name__}")
        values = list(values)
        if not values:
            raise ValueError("Choice: needs at least one value")
        self.values = values

    @classmethod
    def linspace(cls, start: float, stop: float, num: int) -> Choice:
        """Evenly spaced numeric arms, e.g. ``Choice.linspace(1.0, 1.95, 20)``."""
        return cls([float(v) for v in np.linspace(start, stop, int(num))])

    @classmethod
    def grid(cls, axes: Mapping[str, Sequence[Any]]) -> Choice:
        """Arms are dicts, one per point of the product of ``axes``."""
        if not axes:
            raise ValueError("Choice.grid: needs at least one axis")
        names = list(axes)
        return cls([dict(zip(names, combo)) for combo in itertools.product(*axes.values())])

    @property
    def n_arms(self) -> int:
        return len(self.values)

    @property
    def dim(self) -> int:
        return 1

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(0, self.n_arms, size=n)

    def validate(self, candidates: Any) -> np.ndarray:
        idx = np.atleast_1d(np.asarray(candidates))
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"Choice: candidates must be integer arm indices, got {candidates!r}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_arms):
            raise ValueError(f"Choice: arm index out of range [0, {self.n_arms}): {idx.tolist()}")
        return idx.astype(np.int64)

    def to_json(self, candidate: Any) -> int:
        return int(candidate)

    def from_json(self, value: Any) -> int:
        return int(value)

    def describe(self) -> dict:
        return {"type": "Choice", "values": list(self.values)}

    def __repr__(self) -> str:
        return f"Choice({self.values!r})" if self.n_arms <= 6 else f"Choice(<{self.n_arms} arms>)"
