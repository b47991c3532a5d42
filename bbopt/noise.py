"""Seeded noise for torch parameters, regenerated in chunks and never stored, plus exact add/undo.

Noise for (seed, chunk c) comes from one scratch ``torch.Generator`` re-seeded with
``mix(seed, 0, c)``, so any chunk is addressable and identical on every call: a perturbation
θ + s·z costs one chunk of transient memory, never a copy of θ (MeZO's seed trick). The noise
is a pure function of (seed, chunk, kind, device type): replay and resume regenerate it exactly.

- ``gaussian`` (and ``sphere``, normalised by the caller): N(0, 1) by inverse-CDF lookup. Each
  entry takes 16 random bits (MT19937 from the re-seeded generator, 4 entries per 64-bit word)
  as an index into a table of the 65,536 equiprobable normal quantiles Φ⁻¹((k + ½)/65,536),
  mirrored to be exactly symmetric and rescaled to unit variance: E z = 0 and E z² = 1 (to
  float32 rounding), E z⁴ = 2.9992 (3 for the normal), the CDF within 1.1e-5 of Φ everywhere,
  |z| ≤ 4.33 (a true normal exceeds that with probability 1.5e-5).
  ~1.7 ns per weight here against ~5 ns for ``torch.randn`` (MT19937 + Box–Muller), the cost
  that dominates a MeZO step on a large model; numpy's ziggurat (PCG64, SFC64, Philox) measured
  slower still on this machine.
- ``rademacher``: ±1 from packed random bits: one 64-bit word gives 64 signs, expanded through
  a 256 × 8 table (~0.75 ns per weight here).

:class:`NoiseStream` draws into a caller's buffer, so the hot paths allocate nothing per chunk
(per-chunk scratch tensors interleaved with long-lived ones fragment the heap and raise the
process's peak memory).

Arithmetic: every perturbation, undo and update is :func:`shift_` (``p.add_(z, alpha=s)``).
Exact undo (``exact=True`` in :class:`~bbopt.params.ModelParams`, not the default). In floating
point (p + sz) − sz ≠ p for a few per cent of entries (fp32, ε = 1e-3, weights ~0.05: ~4%;
weights near zero lose their low bits entirely), so MeZO's ±ε round trip drifts by an ulp here
and there. :class:`Piece` records, while shifting, the entries the reverse shift would not give
back and their original values (int32 index + value: 8 bytes per such entry, measured ~0.35 byte
per parameter in fp32, more in fp16/bf16, where most entries near zero need it); undo patches
them: bit-exact in every dtype. In fp16/bf16 the shift is computed in fp32 and rounded once, so
the perturbation the model actually sees is ``fl(p + sz) − p``, which can differ from sz by up to
half an ulp of p (large relative error for ε ≪ |p|·2⁻⁸ in bf16): keep ε well above that, or fp32.
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


#: random bits per Gaussian entry: the table has 2**GAUSS_BITS quantiles
GAUSS_BITS = 16


def gaussian_table() -> torch.Tensor:
    """The 2¹⁶ equiprobable N(0, 1) quantiles (float32, ascending), exactly symmetric, unit variance."""
    k = 1 << GAUSS_BITS
    upper = torch.special.ndtri((torch.arange(k // 2, k, dtype=torch.float64) + 0.5) / k)
    table = torch.cat([-upper.flip(0), upper])
    return (table / table.square().mean().sqrt()).float()


class NoiseStream:
    """Regenerates noise chunks from seeds on one device (a dedicated generator, never the global RNG)."""

    def __init__(self, device: Any):
        self.device = torch.device(device)
        self.gen = torch.Generator(device=self.device)
        #: ±1 for each of the 256 byte values, bit i of the byte -> column i
        self._signs = torch.tensor([[1.0 if (v >> i) & 1 else -1.0 for i in range(8)] for v in range(256)],
                                   device=self.device)
        self._table = gaussian_table().to(self.device)
        self._words = torch.empty(0, dtype=torch.int64, device=self.device)
        self._index = torch.empty(0, dtype=torch.int32, device=self.device)

    def draw(self, seed: int, tensor: int, chunk: int, n: int, kind: str,
             out: torch.Tensor | None = None) -> torch.Tensor:
        """z: ``(n,)`` float32, written into ``out[:n]`` when given (no allocation).

        ``gaussian`` and ``sphere`` (normalised later) are N(0, 1); ``rademacher`` ±1.
        """
        z = torch.empty(n, dtype=torch.float32, device=self.device) if out is None else out[:n]
        self.gen.manual_seed(mix(seed, tensor, chunk))
        if kind == "rademacher":
            return self._signs_into(z)
        return self._gaussian_into(z)

    def _bits(self, n_words: int, n_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n_words`` uniform 64-bit words from the generator, and an int32 index scratch of ``n_index``."""
        if self._words.numel() < n_words or self._index.numel() < n_index:
            self._words = torch.empty(max(n_words, self._words.numel()), dtype=torch.int64, device=self.device)
            self._index = torch.empty(max(n_index, self._index.numel()), dtype=torch.int32, device=self.device)
        words = self._words[:n_words]
        words.random_(-(1 << 63), None, generator=self.gen)  # the full 64-bit range: every bit uniform
        return words, self._index[:n_index]

    def _gaussian_into(self, z: torch.Tensor) -> torch.Tensor:
        n = z.numel()
        words, index = self._bits(-(-n // 4), n)
        index.copy_(words.view(torch.uint16)[:n])
        return torch.index_select(self._table, 0, index, out=z)

    def _signs_into(self, z: torch.Tensor) -> torch.Tensor:
        n = z.numel()
        n_bytes = -(-n // 8)
        words, index = self._bits(-(-n_bytes // 8), n_bytes)
        index.copy_(words.view(torch.uint8)[:n_bytes])
        if n % 8 == 0:
            torch.index_select(self._signs, 0, index, out=z.view(-1, 8))
        else:
            z.copy_(torch.index_select(self._signs, 0, index).view(-1)[:n])
        return z


def shift_(p: torch.Tensor, z: torch.Tensor, scale: float) -> None:
    """``p ← p + scale·z`` in place: the one arithmetic of every perturbation, undo and update, so
    a candidate, its stacked copy and the update that moves to it agree bit for bit (in fp32 for
    low-precision ``p``, rounded once)."""
    if p.dtype == torch.float32:
        p.add_(z, alpha=scale)
    else:
        p.copy_(p.float().add_(z, alpha=scale))


class Piece:
    """Exact add / undo of ``scale·z`` on one flat slice of a parameter (its repair list)."""

    __slots__ = ("repair",)

    def __init__(self) -> None:
        #: (int32 flat indices, original values) of the entries undo must patch; None when there are none
        self.repair: tuple[torch.Tensor, torch.Tensor] | None = None

    def add(self, p: torch.Tensor, z: torch.Tensor, scale: float) -> None:
        """:func:`shift_` ``p`` by ``scale·z``, remembering what ``undo`` needs to give ``p`` back bit for bit."""
        moved = p.clone()
        shift_(moved, z, scale)
        back = moved.clone()
        shift_(back, z, -scale)
        # compared bit for bit: −0.0 vs 0.0 and NaN payloads count as different
        bad = (_bits(back) != _bits(p)).nonzero().view(-1)
        self.repair = (bad.to(torch.int32), p[bad].clone()) if bad.numel() else None
        p.copy_(moved)

    def undo(self, p: torch.Tensor, z: torch.Tensor, scale: float) -> None:
        """Shift ``p`` back by ``−scale·z`` and patch the recorded entries: the value before :meth:`add`."""
        shift_(p, z, -scale)
        if self.repair is not None:
            index, values = self.repair
            p[index.long()] = values
        self.repair = None

    @property
    def nbytes(self) -> int:
        if self.repair is None:
            return 0
        index, values = self.repair
        return index.numel() * (4 + values.element_size())


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bit patterns of ``t`` as integers of the same width."""
    return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


class FlatLayout:
    """The selected tensors as one flat index space ``[0, N)``, cut into noise chunks.

    Chunk c covers ``[c·S, min((c+1)·S, N))`` whatever tensors it spans, so many small tensors
    share one draw. ``pieces[c]`` lists ``(tensor, a_t, b_t, a_z, b_z)``: the local flat range
    ``[a_t, b_t)`` of a tensor inside chunk c and where it sits in the chunk's z.
    """

    def __init__(self, numels: list[int], size: int):
        self.size = size
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
        return range(self.offsets[ti] // self.size, (self.offsets[ti + 1] - 1) // self.size + 1)
