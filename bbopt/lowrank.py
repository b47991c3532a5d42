"""Low-rank seeded noise: per 2-D weight a direction Z of rank r, regenerated from its seed.

Two families, named ``"<family>:<r>"`` (a :class:`~bbopt.perturbations.Direction`'s ``noise``):

- ``lowrank:r`` (LOZO, Chen et al. ICLR 2025, arXiv 2410.07698): Z = U Vᵀ / √r, U ∈ R^{m×r}
  and V ∈ R^{n×r} Gaussian;
- ``subspace:r`` (SubZero, Yu et al. ICCV 2025, arXiv 2410.08989): Z = U S Vᵀ · √(mn) / r,
  U, V orthonormal columns (QR of Gaussians), S ∈ R^{r×r} Gaussian.

Both are scaled so an entry has unit mean square, like every other noise kind here (so ``eps`` and
``lr`` keep their MeZO meaning). A 62-bit seed carries two tags: the high bits (``seed >> 31``, the
*lazy* tag) seed the factors kept for several steps (LOZO's V; SubZero's U and V), the whole seed
the factor drawn fresh each step (LOZO's U; SubZero's S): :func:`lazy_seed`. A weight of ≥ 2 dims
is viewed as (shape[0], rest); tensors of fewer dims get plain Gaussian noise. Z is a pure
function of (seed, kind, layout), so replay and resume regenerate it exactly; it is formed a block
of rows at a time (transient: one noise chunk), from factors of r·(m + n) numbers per weight.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Sequence

import torch

from bbopt.noise import mix

FAMILIES = ("lowrank", "subspace")
_KIND = re.compile(r"^(lowrank|subspace):([1-9][0-9]*)$")
_TAG_BITS = 31
_FRESH, _LAZY_U, _LAZY_V = 1 << 40, 1 << 41, 1 << 42  # distinct chunk ids in ``mix``: independent streams


def parse_kind(kind: str) -> tuple[str, int] | None:
    """``("lowrank", 4)`` for ``"lowrank:4"``; None for any other noise kind."""
    m = _KIND.match(kind) if isinstance(kind, str) else None
    return None if m is None else (m.group(1), int(m.group(2)))


def lazy_seed(lazy_tag: int, fresh_tag: int) -> int:
    """The seed of a step: the lazy factors' tag in the high bits, the fresh one in the low 31."""
    return ((int(lazy_tag) & ((1 << _TAG_BITS) - 1)) << _TAG_BITS) | (int(fresh_tag) & ((1 << _TAG_BITS) - 1))


def lazy_tag(seed: int) -> int:
    return int(seed) >> _TAG_BITS


def matrix_shape(shape: torch.Size) -> tuple[int, int] | None:
    """(m, n) for a tensor of ≥ 2 dims viewed as (shape[0], rest); None for 0-/1-D tensors."""
    if len(shape) < 2:
        return None
    m = int(shape[0])
    return m, math.prod(shape) // m


class Factors:
    """The factors of one seed: per tensor ``(left, right)`` with Z = left @ rightᵀ (or None: Gaussian)."""

    def __init__(self, family: str, rank: int, seed: int, shapes: Sequence[torch.Size], device: torch.device):
        gen = torch.Generator(device=device)
        lazy = lazy_tag(seed)
        self.parts: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        for ti, shape in enumerate(shapes):
            mn = matrix_shape(shape)
            if mn is None:
                self.parts.append(None)
                continue
            m, n = mn
            r = min(rank, m, n)
            if family == "lowrank":
                u = _randn(gen, mix(seed, ti, _FRESH), (m, r), device)
                v = _randn(gen, mix(lazy, ti, _LAZY_V), (n, r), device)
                self.parts.append((u / math.sqrt(r), v))
            else:
                u = torch.linalg.qr(_randn(gen, mix(lazy, ti, _LAZY_U), (m, r), device))[0]
                v = torch.linalg.qr(_randn(gen, mix(lazy, ti, _LAZY_V), (n, r), device))[0]
                s = _randn(gen, mix(seed, ti, _FRESH), (r, r), device)
                self.parts.append((u @ s * (math.sqrt(m * n) / r), v))


def _randn(gen: torch.Generator, seed: int, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
    gen.manual_seed(seed)
    return torch.randn(shape, generator=gen, device=device)


class LowRankNoise:
    """Fills noise chunks of low-rank kinds; keeps the factors of the last few seeds (a ± pair and
    an update reuse them)."""

    def __init__(self, shapes: Sequence[torch.Size], device: torch.device, keep: int = 4):
        self.shapes = list(shapes)
        self.device = device
        self.keep = keep
        self._cache: OrderedDict[tuple[int, str], Factors] = OrderedDict()

    def factors(self, seed: int, kind: str) -> Factors:
        key = (int(seed), kind)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        parsed = parse_kind(kind)
        if parsed is None:
            raise ValueError(f"not a low-rank noise kind: {kind!r}")
        out = self._cache[key] = Factors(parsed[0], parsed[1], seed, self.shapes, self.device)
        while len(self._cache) > self.keep:
            self._cache.popitem(last=False)
        return out

    def fill(self, z: torch.Tensor, seed: int, kind: str, c: int, pieces: Sequence[tuple[int, int, int, int, int]],
             gaussian: torch.Generator) -> torch.Tensor:
        """Chunk ``c`` of the direction into ``z`` (its pieces: ``(tensor, a_t, b_t, a_z, b_z)``)."""
        parts = self.factors(seed, kind).parts
        for ti, a_t, b_t, a_z, b_z in pieces:
            part = parts[ti]
            if part is None:  # 1-D tensors: Gaussian, seeded per (seed, tensor, chunk)
                gaussian.manual_seed(mix(seed, ti + 1, c))
                torch.randn(b_t - a_t, generator=gaussian, device=self.device, out=z[a_z:b_z])
                continue
            left, right = part
            n = right.shape[0]
            r0, r1 = a_t // n, (b_t - 1) // n + 1
            block = (left[r0:r1] @ right.T).view(-1)
            z[a_z:b_z] = block[a_t - r0 * n:b_t - r0 * n]
        return z
