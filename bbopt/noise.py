"""Seeded noise for torch parameters, regenerated in chunks and never stored, plus exact add/undo.

Noise for (seed, tensor i, chunk c) comes from one scratch ``torch.Generator`` re-seeded with
``mix(seed, i, c)``, so any chunk is addressable and identical on every call: a perturbation
θ + s·z costs one chunk of transient memory, never a copy of θ (MeZO's seed trick).

Exact undo. In floating point (p + d) − d ≠ p for a few per cent of entries (fp32, ε = 1e-3,
weights ~0.05: ~4%; weights near zero lose their low bits entirely), so MeZO's ±ε round trip
drifts by an ulp here and there. :class:`Piece` therefore records, while adding, the entries
whose ``(p + d) − d`` would not give ``p`` back and their original values (int32 index + value:
8 bytes per such entry, measured ~0.35 byte per parameter in fp32, more in fp16/bf16, where most
entries near zero need it). Undo recomputes ``(p + d) − d`` and patches those entries: bit-exact
in every dtype. In fp16/bf16 the perturbation is computed in fp32 and rounded once, so the
perturbation the model actually sees is ``fl(p + d) − p``, which can differ from d by up to half
an ulp of p (large relative error for ε ≪ |p|·2⁻⁸ in bf16): keep ε well above that, or fp32.
"""

from __future__ import annotations

from typing import Any

import torch

_M64 = (1 << 64) - 1


def mix(seed: int, tensor: int, chunk: int) -> int:
    """A 63-bit hash of (seed, tensor, chunk) (splitmix64 finaliser): independent generator seeds."""
    h = (int(seed) * 0x9E3779B97F4A7C15 + tensor * 0xBF58476D1CE4E5B9 + chunk * 0x94D049BB133111EB + 1) & _M64
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _M64
    return (h ^ (h >> 31)) >> 1


def chunk_ranges(numel: int, size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(numel)`` in pieces of at most ``size``."""
    return [(a, min(a + size, numel)) for a in range(0, numel, size)]


class NoiseStream:
    """Regenerates noise chunks from seeds on one device (a dedicated generator, never the global RNG)."""

    def __init__(self, device: Any):
        self.device = torch.device(device)
        self.gen = torch.Generator(device=self.device)

    def draw(self, seed: int, tensor: int, chunk: int, n: int, kind: str) -> torch.Tensor:
        """z: ``(n,)`` float32. ``gaussian`` and ``sphere`` (normalised later) are N(0, 1); ``rademacher`` ±1."""
        self.gen.manual_seed(mix(seed, tensor, chunk))
        if kind == "rademacher":
            z = torch.empty(n, dtype=torch.float32, device=self.device)
            return z.random_(0, 2, generator=self.gen).mul_(2.0).sub_(1.0)
        return torch.randn(n, generator=self.gen, device=self.device)


class Piece:
    """Exact add / undo of ``d`` on one flat slice of a parameter (the repair list of that slice)."""

    __slots__ = ("repair",)

    def __init__(self) -> None:
        #: (int32 flat indices, original values) of the entries undo must patch; None when there are none
        self.repair: tuple[torch.Tensor, torch.Tensor] | None = None

    def add(self, p: torch.Tensor, d: torch.Tensor, exact: bool) -> None:
        """``p ← fl(p + d)``, remembering what ``undo`` needs to give ``p`` back bit for bit."""
        s = _add(p, d)
        if exact:  # compared bit for bit: −0.0 vs 0.0 and NaN payloads count as different
            bad = (_bits(_sub(s, d)) != _bits(p)).nonzero().view(-1)
            self.repair = (bad.to(torch.int32), p[bad].clone()) if bad.numel() else None
        p.copy_(s)

    def undo(self, p: torch.Tensor, d: torch.Tensor) -> None:
        """``p ← fl(p − d)`` with the recorded entries patched: the value before :meth:`add`."""
        back = _sub(p, d)
        self._patch(back)
        p.copy_(back)
        self.repair = None

    def move(self, p: torch.Tensor, d_old: torch.Tensor, d_new: torch.Tensor, exact: bool) -> None:
        """Undo ``d_old`` and add ``d_new`` in one pass (same noise chunk, two scales)."""
        back = _sub(p, d_old)
        self._patch(back)
        self.add(back, d_new, exact)
        p.copy_(back)

    def _patch(self, back: torch.Tensor) -> None:
        if self.repair is not None:
            index, values = self.repair
            back[index.long()] = values

    @property
    def nbytes(self) -> int:
        if self.repair is None:
            return 0
        index, values = self.repair
        return index.numel() * (4 + values.element_size())


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bit patterns of ``t`` as integers of the same width."""
    return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def _add(p: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """One IEEE addition per entry (no fused multiply-add), in fp32 for low-precision ``p``."""
    if p.dtype == torch.float32:
        return p + d
    return (p.float() + d).to(p.dtype)


def _sub(p: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    if p.dtype == torch.float32:
        return p - d
    return (p.float() - d).to(p.dtype)


class FlatLayout:
    """The selected tensors as one flat index space ``[0, N)``, cut into noise chunks.

    Chunk c covers ``[c·S, min((c+1)·S, N))`` whatever tensors it spans, so many small tensors
    share one draw. ``pieces[c]`` lists ``(tensor, a_t, b_t, a_z, b_z)``: the local flat range
    ``[a_t, b_t)`` of a tensor inside chunk c and where it sits in the chunk's z.
    """

    def __init__(self, numels: list[int], size: int):
        self.offsets = [0]
        for n in numels:
            self.offsets.append(self.offsets[-1] + n)
        self.n = self.offsets[-1]
        self.chunks = chunk_ranges(self.n, size)
        self.pieces: list[list[tuple[int, int, int, int, int]]] = []
        for a, b in self.chunks:
            part = []
            for ti, (start, stop) in enumerate(zip(self.offsets[:-1], self.offsets[1:])):
                lo, hi = max(a, start), min(b, stop)
                if lo < hi:
                    part.append((ti, lo - start, hi - start, lo - a, hi - a))
            self.pieces.append(part)

    def chunks_of(self, ti: int) -> range:
        """The chunks that overlap tensor ``ti``."""
        size = self.chunks[0][1] - self.chunks[0][0]
        return range(self.offsets[ti] // size, (self.offsets[ti + 1] - 1) // size + 1)
