"""BBT's random projection p = A·z, regenerated from a seed instead of stored.

A: (D, d) with D = n_prompt·H, entries N(0, s²), s = α·σ̂/(√d·σ₀) (BBTv2 code, Oct 2022):
each coordinate of z moves by about σ₀ under CMA-ES, so each prompt entry starts at about
α·σ̂ — the scale of what it is added to. σ̂ is the word-embedding std for the input layer
and, for deeper layers, the std of that layer's input hidden states after 5 rounds of
clipping to mean ± 3·std (outliers dominate transformer activations).

A is drawn in row chunks, each from its own seeded generator, on the CPU (so CPU and GPU
runs agree). Small matrices are kept after the first use; large ones (RoBERTa-large: 24 ×
51,200 × 500 floats, 2.4 GB) are regenerated chunk by chunk on every product.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from bbopt.seeding import child_seed, int_seed

CHUNK_ROWS = 4096


def projection_std(alpha: float, sigma_hat: float, dim: int, sigma0: float) -> float:
    """s = α·σ̂/(√d·σ₀)."""
    return float(alpha) * float(sigma_hat) / (math.sqrt(dim) * float(sigma0))


def clipped_std(values: Any, rounds: int = 5, k: float = 3.0) -> float:
    """Std of ``values`` after ``rounds`` of clipping to mean ± k·std (BBTv2's σ̂ for hidden states)."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("clipped_std: no values")
    for _ in range(rounds):
        mu, sd = x.mean(), x.std()
        x = np.clip(x, mu - k * sd, mu + k * sd)
    return float(x.std())


class RandomProjection:
    """``z: (m, d)`` -> ``A·z: (m, out_dim)`` float32, A seeded by ``seed`` (a SeedSequence)."""

    def __init__(self, out_dim: int, dim: int, std: float, seed: np.random.SeedSequence, cache: bool = True):
        if out_dim < 1 or dim < 1:
            raise ValueError(f"projection sizes must be positive, got out_dim={out_dim}, dim={dim}")
        if not (std > 0 and math.isfinite(std)):
            raise ValueError(f"projection std must be a positive finite number, got {std}")
        self.out_dim, self.dim, self.std = int(out_dim), int(dim), float(std)
        self.seed = seed
        self.cache = bool(cache)
        self._matrix: torch.Tensor | None = None

    @property
    def n_chunks(self) -> int:
        return -(-self.out_dim // CHUNK_ROWS)

    def chunk(self, c: int) -> torch.Tensor:
        """Rows ``[c·CHUNK_ROWS, …)`` of A: ``(rows, d)``, the same on every call."""
        rows = min(CHUNK_ROWS, self.out_dim - c * CHUNK_ROWS)
        gen = torch.Generator().manual_seed(int_seed(child_seed(self.seed, c)))
        return torch.randn(rows, self.dim, generator=gen) * self.std

    def matrix(self) -> torch.Tensor:
        """The whole A ``(out_dim, d)`` (kept when ``cache``)."""
        if self._matrix is not None:
            return self._matrix
        full = torch.cat([self.chunk(c) for c in range(self.n_chunks)])
        if self.cache:
            self._matrix = full
        return full

    def __call__(self, z: Any) -> torch.Tensor:
        zt = torch.as_tensor(np.asarray(z, dtype=np.float32)).reshape(-1, self.dim)
        if self.cache:
            return zt @ self.matrix().T
        out = torch.empty(zt.shape[0], self.out_dim)
        for c in range(self.n_chunks):
            a = self.chunk(c)
            out[:, c * CHUNK_ROWS:c * CHUNK_ROWS + a.shape[0]] = zt @ a.T
        return out
