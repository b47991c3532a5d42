"""Mini-batches for torch problems: a seeded batcher and a step → batch lookup.

A ZO step evaluates all its candidates on one mini-batch, and a candidate carries its step,
so the problem needs ``batch(step)`` to be a pure function: :class:`ShuffledBatches` gives a
seeded permutation per epoch (any step, any order, after any resume); :class:`BatchCycle`
does the same for any list of batches and cycles a plain re-iterable (a ``DataLoader``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


class ShuffledBatches(Sequence):
    """Batches of ``tensors`` (same first dim ``N``), reshuffled every epoch from ``seed``.

    ``len()`` is batches per epoch; item ``t`` (any ``t ≥ 0``, epochs continue past ``len``)
    is the tuple of row slices of batch ``t % len`` in epoch ``t // len``. The last partial
    batch is dropped when ``drop_last`` (so every step sees ``batch_size`` rows).
    """

    def __init__(self, tensors: Sequence[torch.Tensor], batch_size: int, seed: int = 0, drop_last: bool = True):
        if not tensors:
            raise ValueError("ShuffledBatches: needs at least one tensor")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError("ShuffledBatches: all tensors need the same first dimension")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n:
            raise ValueError(f"ShuffledBatches: batch_size must be an int in [1, {n}], got {batch_size!r}")
        self.tensors = tuple(tensors)
        self.batch_size = batch_size
        self.seed = int(seed)
        self.n = n
        self._per_epoch = n // batch_size if drop_last else -(-n // batch_size)
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self._per_epoch

    def __getitem__(self, t: int) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        if isinstance(t, slice) or t < 0:
            raise IndexError("ShuffledBatches: index with a step t >= 0")
        epoch, k = divmod(int(t), self._per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._perm = (epoch, rng.permutation(self.n))
        rows = torch.from_numpy(self._perm[1][k * self.batch_size:(k + 1) * self.batch_size])
        return tuple(x[rows] for x in self.tensors)


class BatchCycle:
    """``batch(step)`` over ``data``: indexed when it is a sequence, else streamed and cycled.

    A stream (e.g. a ``DataLoader``) is re-iterated from the start when a step earlier than
    the current one is asked for; that replays exactly only if iterating it is deterministic.
    """

    def __init__(self, data: Any):
        if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
            raise TypeError(f"TorchProblem: data must be a re-iterable of batches (a list, a DataLoader), "
                            f"got {type(data).__name__}")
        self.data = data
        self.indexed = hasattr(data, "__getitem__") and hasattr(data, "__len__")
        if self.indexed and len(data) == 0:
            raise ValueError("TorchProblem: data has no batches")
        self._it: Any = None
        self._pos = -1
        self._current: Any = None

    def __call__(self, step: int) -> Any:
        if self.indexed:
            return self.data[step] if isinstance(self.data, ShuffledBatches) else self.data[step % len(self.data)]
        if step < self._pos or self._it is None:
            self._it, self._pos, self._current = iter(self.data), -1, None
        while self._pos < step:
            try:
                self._current = next(self._it)
            except StopIteration:
                self._it = iter(self.data)
                try:
                    self._current = next(self._it)
                except StopIteration:
                    raise ValueError("TorchProblem: data yielded no batches") from None
            self._pos += 1
        return self._current


def to_device(batch: Any, device: torch.device) -> Any:
    """Tensors inside tuples / lists / dicts (HF encodings included) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):  # HF encodings come back as plain dicts
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def repeat_batch(batch: Any, copies: int, memo: dict | None = None) -> Any:
    """Every tensor repeated ``copies`` times along dim 0, copy-major: rows ``k·B … (k+1)·B − 1``.

    ``memo`` (optional) receives ``id(original tensor) → repeated tensor``.
    """
    if isinstance(batch, torch.Tensor):
        out = batch.repeat(copies, *([1] * (batch.dim() - 1))) if batch.dim() else batch
        if memo is not None:
            memo[id(batch)] = out
        return out
    if isinstance(batch, Mapping):
        return {k: repeat_batch(v, copies, memo) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(repeat_batch(v, copies, memo) for v in batch)
    return batch


def n_rows(batch: Any) -> int:
    """Examples in a batch: the first dim of its first tensor (1 when it holds none)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    values = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, (list, tuple)) else ()
    for v in values:
        if isinstance(v, (torch.Tensor, Mapping, list, tuple)):
            return n_rows(v)
    return 1
