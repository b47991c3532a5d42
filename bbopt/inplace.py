"""In-place noise on a list of parameter tensors: perturb, move, restore and seed-based updates.

:class:`ChunkedTensors` is the engine under :class:`~bbopt.params.ModelParams`. The tensors form
one flat index space cut into noise chunks (:class:`~bbopt.noise.FlatLayout`); z for (seed,
chunk) is regenerated into a scratch buffer whenever it is needed and never stored, so every
operation costs one chunk of transient memory (two or three scratch chunks in all, allocated once).

One MeZO step costs three noise passes over θ::

    perturb(+ε)   θ ← θ + εz                   (evaluate L₊)
    move_to(−ε)   θ ← θ − 2εz                  (evaluate L₋; one pass: the same z)
    restore(defer=True), then add_(...)        θ ← θ + εz − lr·g·z in one pass

``restore(defer=True)`` leaves the last perturbation applied and marks it pending: the next
update undoes it with the z it regenerates anyway (the arithmetic is exactly restore-then-update,
so a resumed run that restores first gets the same bits); any other operation undoes it first.
Until then the module holds θ + s·z: read it through the space or call ``restore()``.

Round trip. By default (``exact=False``, MeZO's own arithmetic) undo computes fl(p − d): the
weights may drift by an ulp per step. ``exact=True`` keeps repair lists
(:class:`~bbopt.noise.Piece`: +~0.35 byte per fp32 parameter while a perturbation is applied,
more in fp16/bf16, and one extra comparison pass per perturbation) and restores bit for bit.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch

from bbopt.lowrank import LowRankNoise, parse_kind
from bbopt.noise import FlatLayout, NoiseStream, Piece, shift_
from bbopt.perturbations import Clean, Coordinate, Direction, Spec

Term = tuple[int, float, str]  # (seed, coef, noise kind): coef·z(seed)


class ChunkedTensors:
    """Seeded chunked noise applied in place to ``tensors`` (see the module docstring)."""

    tensors: list[torch.nn.Parameter]
    masks: list[torch.Tensor | None]

    def _init_chunks(self, chunk_size: int, exact: bool, flatten: bool) -> None:
        self.chunk_size = chunk_size
        self.layout = FlatLayout([p.numel() for p in self.tensors], chunk_size)
        self.flat = _flatten(self.tensors) if flatten else None
        self.exact = bool(exact)
        self._unmasked: torch.Tensor | None = None  # flat bool: True where the mask drops an entry
        self._noise = NoiseStream(self.device)
        self._scratch: list[torch.Tensor] = []
        self._active: Spec | None = None
        self._deferred = False
        self._pieces: dict[tuple[int, int], Piece] = {}  # (chunk, view) -> repair list
        self._coord_old: torch.Tensor | None = None
        self._sphere: dict[int, float] = {}
        self.version = 0  # bumped by every update, so caches keyed on it stay valid
        #: flat float32 per-coordinate scale of every direction (HiZOO's Σ^{1/2}), None: 1; set by its owner
        self.noise_scale: torch.Tensor | None = None
        self._lowrank: LowRankNoise | None = None  # low-rank noise kinds (LOZO, SubZero), built on first use

    @property
    def device(self) -> torch.device:
        return self.tensors[0].device

    @property
    def n_chunks(self) -> int:
        return len(self.layout.chunks)

    @property
    def applied(self) -> Spec | None:
        """The perturbation the module holds now (pending ones included), or None when it holds θ."""
        return self._active

    # ------------------------------------------------------------------ noise
    def _buffer(self, k: int) -> torch.Tensor:
        """Scratch chunk ``k`` (float32, one chunk long), allocated on first use and kept."""
        while len(self._scratch) <= k:
            size = min(self.chunk_size, self.layout.n)
            self._scratch.append(torch.empty(size, dtype=torch.float32, device=self.device))
        return self._scratch[k]

    def _raw(self, seed: int, noise: str, c: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """z of chunk ``c`` (masked, times ``noise_scale`` when set), into ``out`` when given."""
        a, b = self.layout.chunks[c]
        if parse_kind(noise) is None:
            z = self._noise.draw(seed, 0, c, b - a, noise, out)
        else:
            self.lowrank_factors(seed, noise)  # builds the factor cache on first use
            assert self._lowrank is not None
            z = torch.empty(b - a, dtype=torch.float32, device=self.device) if out is None else out[:b - a]
            self._lowrank.fill(z, seed, noise, c, self.layout.pieces[c], self._noise.gen)
        if self.noise_scale is not None:
            z.mul_(self.noise_scale[a:b])
        if self._unmasked is not None:
            z.masked_fill_(self._unmasked[a:b], 0.0)
        return z

    def lowrank_factors(self, seed: int, noise: str) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
        """Per tensor ``(left, right)`` with z = left @ rightᵀ for a low-rank kind (None: a Gaussian tensor)."""
        if self._lowrank is None:
            self._lowrank = LowRankNoise([p.shape for p in self.tensors], self.device)
        return self._lowrank.factors(seed, noise).parts

    def delta(self, seed: int, noise: str, c: int, coef: float) -> torch.Tensor:
        """``coef·z`` for noise chunk ``c`` of the flat parameter space: a new float32 tensor."""
        return self._raw(seed, noise, c).mul_(coef * self._factor(seed, noise))

    def noise_chunk(self, seed: int, noise: str, c: int) -> tuple[torch.Tensor, float]:
        """``(u, f)`` with z = f·u for chunk ``c`` (u: a new float32 tensor, masked): shifting θ by
        s·z is ``shift_(θ, u, s·f)``, the arithmetic of the in-place path."""
        return self._raw(seed, noise, c), self._factor(seed, noise)

    def _factor(self, seed: int, noise: str) -> float:
        return self._sphere_factor(seed) if noise == "sphere" else 1.0

    def _sphere_factor(self, seed: int) -> float:
        """√d / ‖z‖ (one extra pass over the noise per new seed; a few seeds are cached)."""
        if seed not in self._sphere:
            sq = sum(float(self._raw(seed, "sphere", c, self._buffer(0)).square().sum())
                     for c in range(self.n_chunks))
            if len(self._sphere) >= 16:
                self._sphere.pop(next(iter(self._sphere)))
            self._sphere[seed] = math.sqrt(self.dim / sq) if sq > 0 else 0.0
        return self._sphere[seed]

    @property
    def dim(self) -> int:
        """Perturbed coordinates: masked entries only."""
        return sum(p.numel() if m is None else int(m.sum()) for p, m in zip(self.tensors, self.masks))

    def tensor_delta(self, terms: Sequence[Term], ti: int) -> torch.Tensor:
        """Σ_j coef_j·z_j for tensor ``ti`` alone, float32 shaped like it (one tensor materialised)."""
        self._settle()
        p = self.tensors[ti]
        out = torch.zeros(p.numel(), dtype=torch.float32, device=p.device)
        for c in self.layout.chunks_of(ti):
            for t, a_t, b_t, a_z, b_z in self.layout.pieces[c]:
                if t == ti:
                    for seed, coef, noise in terms:
                        out[a_t:b_t] += self.delta(seed, noise, c, coef)[a_z:b_z]
        return out.view(p.shape)

    def direction_tensors(self, seed: int, noise: str = "gaussian") -> list[torch.Tensor]:
        """z as full tensors shaped like the parameters (+P memory: forward-gradient tangents)."""
        out = [torch.empty(p.numel(), dtype=torch.float32, device=p.device) for p in self.tensors]
        for c in range(self.n_chunks):
            z = self.delta(seed, noise, c, 1.0)
            for ti, a_t, b_t, a_z, b_z in self.layout.pieces[c]:
                out[ti][a_t:b_t] = z[a_z:b_z]
        return [o.view(p.shape).to(p.dtype) for o, p in zip(out, self.tensors)]

    def _views(self, c: int) -> list[tuple[torch.Tensor, int, int]]:
        """In-place targets of chunk ``c``: one slice of the flat buffer, or one per tensor piece."""
        a, b = self.layout.chunks[c]
        if self.flat is not None:
            return [(self.flat[a:b], 0, b - a)]
        return [(self.tensors[ti].data.view(-1)[a_t:b_t], a_z, b_z) for ti, a_t, b_t, a_z, b_z in self.layout.pieces[c]]

    # ------------------------------------------------------------ in place
    @torch.no_grad()
    def perturb(self, spec: Spec) -> None:
        """Apply ``spec`` in place (one at a time; a pending one is undone first)."""
        self._settle()
        if self._active is not None:
            raise RuntimeError("ModelParams: a perturbation is already applied; restore() it first")
        if isinstance(spec, Direction):
            z, factor = self._buffer(0), self._factor(spec.seed, spec.noise)
            for c in range(self.n_chunks):
                self._shift_chunk(c, self._raw(spec.seed, spec.noise, c, z), spec.scale * factor)
        elif isinstance(spec, Coordinate):
            flat = self.tensors[spec.tensor].view(-1)
            self._coord_old = flat[spec.index].clone()
            flat[spec.index] += spec.scale
        elif not isinstance(spec, Clean):
            raise TypeError(f"ModelParams: a {spec.kind} candidate is not a weight perturbation")
        self._active = spec

    @torch.no_grad()
    def restore(self, defer: bool = False) -> None:
        """Undo the applied perturbation (bit for bit when ``exact``).

        ``defer=True`` leaves a direction applied, to be undone by the next update in the same
        noise pass (or first thing by any other operation of the space).
        """
        spec = self._active
        if isinstance(spec, Direction) and defer:
            self._deferred = True
            return
        self._active, self._deferred = None, False
        if isinstance(spec, Direction):
            z, factor = self._buffer(0), self._factor(spec.seed, spec.noise)
            for c in range(self.n_chunks):
                self._undo_chunk(c, self._raw(spec.seed, spec.noise, c, z), spec.scale * factor)
            self._pieces.clear()
        elif isinstance(spec, Coordinate):
            old, self._coord_old = self._coord_old, None
            assert old is not None, "perturb() saved the coordinate's value"
            self.tensors[spec.tensor].view(-1)[spec.index] = old

    def _shift_chunk(self, c: int, z: torch.Tensor, scale: float) -> None:
        """θ of chunk ``c`` shifted by ``scale·z`` (with a repair list when ``exact``)."""
        for k, (view, a_z, b_z) in enumerate(self._views(c)):
            if self.exact:
                self._pieces.setdefault((c, k), Piece()).add(view, z[a_z:b_z], scale)
            else:
                shift_(view, z[a_z:b_z], scale)

    def _undo_chunk(self, c: int, z: torch.Tensor, scale: float) -> None:
        """Undo :meth:`_shift_chunk` (bit for bit when ``exact``)."""
        for k, (view, a_z, b_z) in enumerate(self._views(c)):
            if self.exact:
                self._pieces[(c, k)].undo(view, z[a_z:b_z], scale)
            else:
                shift_(view, z[a_z:b_z], -scale)

    @torch.no_grad()
    def move_to(self, spec: Spec) -> None:
        """Switch from the applied perturbation to ``spec``; one noise pass when both share a seed."""
        old = self._active
        if not (isinstance(old, Direction) and isinstance(spec, Direction)
                and (old.seed, old.noise) == (spec.seed, spec.noise)):
            if old is not None:
                self.restore()
            self.perturb(spec)
            return
        self._deferred = False
        z, factor = self._buffer(0), self._factor(spec.seed, spec.noise)
        for c in range(self.n_chunks):
            raw = self._raw(spec.seed, spec.noise, c, z)
            if self.exact:
                self._undo_chunk(c, raw, old.scale * factor)
                self._shift_chunk(c, raw, spec.scale * factor)
            else:  # MeZO's θ − 2εz: one shift
                self._shift_chunk(c, raw, (spec.scale - old.scale) * factor)
        self._active = spec

    @contextlib.contextmanager
    def perturbed(self, spec: Spec) -> Iterator[None]:
        """``with space.perturbed(spec): loss = ...`` — applied on entry, undone on exit."""
        self.perturb(spec)
        try:
            yield
        finally:
            self.restore()

    @property
    def repair_bytes(self) -> int:
        """Memory held by the repair lists of the applied perturbation."""
        return sum(p.nbytes for p in self._pieces.values())

    def _settle(self) -> None:
        """Undo a pending (deferred) perturbation now."""
        if self._deferred:
            self.restore()

    def _require_clean(self, what: str) -> None:
        self._settle()
        if self._active is not None:
            raise RuntimeError(f"ModelParams: cannot {what} while a perturbation is applied")

    # ---------------------------------------------------------------- updates
    @torch.no_grad()
    def add_(self, terms: Sequence[Term], decay: float = 0.0) -> None:
        """θ ← (1 − decay)·θ (tensors of ≥ 2 dims) + Σ_j coef_j·z(seed_j): a seed-based update.

        ``terms``: ``[(seed, coef, noise), ...]``; each chunk's sum is formed in fp32 and added once
        (one term: θ shifted by coef·z exactly as a perturbation of that scale shifts it). A pending
        perturbation is undone in the same pass.
        """
        self._update(terms, decay, sign_step=None)

    @torch.no_grad()
    def add_sign_(self, terms: Sequence[Term], step: float, decay: float = 0.0) -> None:
        """θ ← (1 − decay)·θ − step·sign(Σ_j coef_j·z_j), elementwise (signSGD on a seed estimate)."""
        self._update(terms, decay, sign_step=step)

    def _update(self, terms: Sequence[Term], decay: float, sign_step: float | None) -> None:
        pending = self._active if self._deferred else None
        if pending is None:
            self._require_clean("update")
        assert pending is None or isinstance(pending, Direction), "only directions are deferred"
        self._active, self._deferred = None, False
        for c in range(self.n_chunks):
            held = None
            if pending is not None:  # undo it with the z this pass regenerates anyway
                held = self._raw(pending.seed, pending.noise, c, self._buffer(2))
                self._undo_chunk(c, held, pending.scale * self._factor(pending.seed, pending.noise))
            if decay:
                for ti, a_t, b_t, _, _ in self.layout.pieces[c]:
                    if self.tensors[ti].dim() >= 2:
                        self.tensors[ti].data.view(-1)[a_t:b_t].mul_(1.0 - decay)
            if not terms:
                continue
            z, scale = self._sum_chunk(c, terms, pending, held)
            if sign_step is not None:
                z, scale = z.mul_(scale).sign_(), -sign_step
            for view, a_z, b_z in self._views(c):
                shift_(view, z[a_z:b_z], scale)
        self._pieces.clear()
        self.version += 1

    def _sum_chunk(self, c: int, terms: Sequence[Term], pending: Direction | None,
                   held: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        """``(u, a)`` with a·u = Σ_j coef_j·z_j on chunk ``c``: one z and its coefficient for a single
        term, else the sum in term order (scratch 1) and 1; ``held`` is the pending seed's z."""
        acc: torch.Tensor | None = None
        for seed, coef, noise in terms:
            reuse = pending is not None and held is not None and (seed, noise) == (pending.seed, pending.noise)
            z = held if reuse else self._raw(seed, noise, c, self._buffer(0))
            assert z is not None
            scale = coef * self._factor(seed, noise)
            if len(terms) == 1:
                return z, scale
            if acc is None:
                acc = torch.mul(z, scale, out=self._buffer(1)[:z.numel()])
            else:
                acc.add_(z, alpha=scale)
        assert acc is not None, "terms is non-empty"
        return acc, 1.0

    @torch.no_grad()
    def add_dense_(self, grads: dict[int, torch.Tensor], alpha: float, decay: float = 0.0) -> None:
        """θ_i ← (1 − decay)·θ_i + alpha·g_i for the tensors in ``grads`` (masked entries only)."""
        self._require_clean("update")
        for ti, g in grads.items():
            p = self.tensors[ti]
            if decay and p.dim() >= 2:
                p.mul_(1.0 - decay)
            step = g.to(p.dtype) * alpha
            mask = self.masks[ti]
            if mask is not None:
                step = step.masked_fill(~mask, 0.0)
            p.add_(step)
        self.version += 1


def _flatten(tensors: list[torch.nn.Parameter]) -> torch.Tensor | None:
    """Re-home the tensors as views of one contiguous buffer (same dtype and device), so a noise chunk
    spanning many small tensors is one slice; ``None`` (tensors left as they are) otherwise.

    Tensor by tensor: each original is released as soon as it is copied (when nothing else holds
    it), so the weights are never held twice."""
    if len({(p.dtype, p.device) for p in tensors}) != 1:
        return None
    buffer = torch.empty(sum(p.numel() for p in tensors), dtype=tensors[0].dtype, device=tensors[0].device)
    offset = 0
    with torch.no_grad():
        for p in tensors:
            n = p.numel()
            buffer[offset:offset + n].copy_(p.reshape(-1))
            p.data = buffer[offset:offset + n].view(p.shape)
            offset += n
    return buffer
