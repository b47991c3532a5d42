"""Seeds: one ``numpy.random.SeedSequence`` per run, split into independent child streams.

Library code never touches the global ``np.random`` or ``torch.manual_seed``; every
random component gets a generator derived here, so the same seed gives the same history.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SeedLike = int | np.random.SeedSequence | None


def as_seed_sequence(seed: SeedLike) -> np.random.SeedSequence:
    """An int, a SeedSequence, or None (fresh OS entropy, recorded in ``.entropy``)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return np.random.SeedSequence(int(seed))


def seed_to_json(seq: np.random.SeedSequence) -> dict:
    """Enough to rebuild ``seq`` exactly (entropy and spawn key)."""
    raw: Any = seq.entropy
    entropy = [int(e) for e in raw] if isinstance(raw, (list, tuple)) else int(raw)
    return {"entropy": entropy, "spawn_key": [int(k) for k in seq.spawn_key]}


def seed_from_json(d: dict) -> np.random.SeedSequence:
    return np.random.SeedSequence(d["entropy"], spawn_key=tuple(d["spawn_key"]))


def child_seed(seq: np.random.SeedSequence, *key: int) -> np.random.SeedSequence:
    """A child stream addressed by ``key`` (stable, unlike ``spawn``, which is stateful)."""
    return np.random.SeedSequence(seq.entropy, spawn_key=tuple(seq.spawn_key) + tuple(key))


def int_seed(seq: np.random.SeedSequence) -> int:
    """A 63-bit integer drawn from ``seq``, for libraries that take a plain int seed."""
    return int(seq.generate_state(1, dtype=np.uint64)[0]) >> 1


def torch_generator(seq: np.random.SeedSequence, device: Any = "cpu") -> Any:
    """A dedicated ``torch.Generator`` seeded from ``seq`` (torch imported lazily)."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(int_seed(seq))
    return gen
