"""ModelParams: a torch module's parameters as a search space that owns its perturbations.

A candidate is a small spec (:mod:`bbopt.perturbations`: a seed and a scale, a coordinate, a
tangent, a noisy copy), never a parameter vector. The space applies a spec to the module in
place and undoes it exactly (:mod:`bbopt.noise`: noise regenerated in chunks from the seed,
repair lists for the entries floating point cannot round-trip), builds K perturbed copies
stacked for one batched forward, and applies updates θ ← θ + Σ c_j z_j without storing z.
Estimators (``bbopt.strategies.zo``) and :class:`~bbopt.problems.TorchProblem` share one
ModelParams, so they agree on which tensors, which mask and which noise.

Selection: ``select`` is None (the parameters with ``requires_grad``, e.g. a peft model's
adapters), ``"all"``, glob patterns on names (``"*.bias"``, ``"*lora_*"``, ``"encoder.layer.5.*"``)
or a predicate ``f(name, param) -> bool``; ``exclude`` takes the same forms. ``mask`` maps
names to bool tensors (only True entries are perturbed and updated); :meth:`magnitude_mask`
builds Sparse MeZO's small-magnitude mask and :meth:`random_mask` DeepZero-style layer masks.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from bbopt.noise import FlatLayout, NoiseStream, Piece
from bbopt.param_select import Selector, check_tensors, select_parameters
from bbopt.perturbations import Clean, Coordinate, Direction, Spec, check_spec, spec_from_json
from bbopt.spaces import Space

LAYER_TYPES = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)


class ModelParams(Space):
    """The selected parameters of ``module``; ``dim`` counts the perturbed coordinates.

    ``chunk_size`` caps the transient noise (elements per chunk); ``exact=False`` skips the
    repair lists (MeZO's arithmetic round trip: less memory, an ulp of drift per step).
    ``flatten=True`` re-homes the selected tensors as views of one contiguous buffer (when they
    share dtype and device), so a noise chunk spanning many small tensors is one slice: the
    module's parameters stay the same ``Parameter`` objects, only their storage moves.
    """

    compact_candidates = True

    def __init__(self, module: torch.nn.Module, select: Selector = None, *, exclude: Selector = None,
                 mask: dict[str, torch.Tensor | None] | None = None, chunk_size: int = 1 << 20, exact: bool = True,
                 flatten: bool = True):
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"ModelParams: module must be a torch.nn.Module, got {type(module).__name__}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"ModelParams: chunk_size must be a positive int, got {chunk_size!r}")
        self.module = module
        named = select_parameters(module, select, exclude)
        self.names = [n for n, _ in named]
        self.tensors = [p for _, p in named]
        check_tensors(named)
        self.chunk_size = chunk_size
        self.layout = FlatLayout([p.numel() for p in self.tensors], chunk_size)
        self._flat = _flatten(self.tensors) if flatten else None
        self.exact = bool(exact)
        self.masks: list[torch.Tensor | None] = [None] * len(self.tensors)
        self._mask_flat: torch.Tensor | None = None
        if mask is not None:
            self.set_mask(mask)
        self._noise = NoiseStream(self.device)
        self._active: Spec | None = None
        self._pieces: dict[tuple[int, int], Piece] = {}  # (chunk, view) -> repair list
        self._coord_old: torch.Tensor | None = None
        self._sphere: dict[int, float] = {}
        self.version = 0  # bumped by every update, so caches keyed on it stay valid

    # ------------------------------------------------------------------ facts
    @property
    def device(self) -> torch.device:
        return self.tensors[0].device

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.tensors)

    @property
    def dim(self) -> int:
        """Perturbed coordinates: masked entries only."""
        return sum(p.numel() if m is None else int(m.sum()) for p, m in zip(self.tensors, self.masks))

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"ModelParams: {name!r} is not a selected parameter") from None

    # --------------------------------------------------------- space protocol
    def sample(self, rng: np.random.Generator, n: int) -> list[Spec]:
        """``n`` Gaussian directions of scale 1e-3 at step 0 (a random-search view of the space)."""
        return [Direction(0, int(rng.integers(1 << 62)), 1e-3, "gaussian") for _ in range(n)]

    def validate(self, candidates: Any) -> list[Spec]:
        items = [candidates] if isinstance(candidates, Spec) else candidates
        if not isinstance(items, (list, tuple)):
            raise ValueError(f"ModelParams: candidates must be a list of specs, got {type(candidates).__name__}")
        out = [check_spec(c, len(self.tensors)) for c in items]
        for c in out:
            if isinstance(c, Coordinate) and c.index >= self.tensors[c.tensor].numel():
                raise ValueError(f"ModelParams: coordinate index {c.index} out of range for {self.names[c.tensor]}")
        return out

    def to_json(self, candidate: Any) -> dict:
        return check_spec(candidate).to_json()

    def from_json(self, value: Any) -> Spec:
        return spec_from_json(value)

    def describe(self) -> dict:
        return {"type": "ModelParams", "module": type(self.module).__name__, "n_tensors": len(self.tensors),
                "n_params": self.n_params, "dim": self.dim, "masked": any(m is not None for m in self.masks),
                "tensors": [[n, list(p.shape)] for n, p in zip(self.names[:50], self.tensors[:50])]}

    def __repr__(self) -> str:
        return f"ModelParams({type(self.module).__name__}, {len(self.tensors)} tensors, dim={self.dim})"

    # ------------------------------------------------------------------ noise
    @property
    def n_chunks(self) -> int:
        return len(self.layout.chunks)

    def delta(self, seed: int, noise: str, c: int, coef: float) -> torch.Tensor:
        """``coef·z`` for noise chunk ``c`` of the flat parameter space: float32, masked, regenerated."""
        return self._raw(seed, noise, c).mul_(coef * self._factor(seed, noise))

    def _raw(self, seed: int, noise: str, c: int) -> torch.Tensor:
        a, b = self.layout.chunks[c]
        z = self._noise.draw(seed, 0, c, b - a, noise)
        if self._mask_flat is not None:
            z.masked_fill_(~self._mask_flat[a:b], 0.0)
        return z

    def _factor(self, seed: int, noise: str) -> float:
        return self._sphere_factor(seed) if noise == "sphere" else 1.0

    def _sphere_factor(self, seed: int) -> float:
        """√d / ‖z‖ (one extra pass over the noise per new seed; a few seeds are cached)."""
        if seed not in self._sphere:
            sq = sum(float(self._raw(seed, "sphere", c).square().sum()) for c in range(self.n_chunks))
            if len(self._sphere) >= 16:
                self._sphere.pop(next(iter(self._sphere)))
            self._sphere[seed] = math.sqrt(self.dim / sq) if sq > 0 else 0.0
        return self._sphere[seed]

    def tensor_delta(self, terms: Sequence[tuple[int, float, str]], ti: int) -> torch.Tensor:
        """Σ_j coef_j·z_j for tensor ``ti`` alone, float32 shaped like it (one tensor materialised)."""
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
        if self._flat is not None:
            return [(self._flat[a:b], 0, b - a)]
        return [(self.tensors[ti].data.view(-1)[a_t:b_t], a_z, b_z) for ti, a_t, b_t, a_z, b_z in self.layout.pieces[c]]

    # ------------------------------------------------------ in place, exact undo
    @torch.no_grad()
    def perturb(self, spec: Spec) -> None:
        """Apply ``spec`` in place (one at a time); :meth:`restore` undoes it bit for bit."""
        if self._active is not None:
            raise RuntimeError("ModelParams: a perturbation is already applied; restore() it first")
        if isinstance(spec, Direction):
            for c, d in self._deltas(spec):
                for k, (view, a_z, b_z) in enumerate(self._views(c)):
                    self._pieces.setdefault((c, k), Piece()).add(view, d[a_z:b_z], self.exact)
        elif isinstance(spec, Coordinate):
            flat = self.tensors[spec.tensor].view(-1)
            self._coord_old = flat[spec.index].clone()
            flat[spec.index] += spec.scale
        elif not isinstance(spec, Clean):
            raise TypeError(f"ModelParams: a {spec.kind} candidate is not a weight perturbation")
        self._active = spec

    @torch.no_grad()
    def restore(self) -> None:
        """Undo the applied perturbation; the parameters are bit-identical to before."""
        spec, self._active = self._active, None
        if isinstance(spec, Direction):
            for c, d in self._deltas(spec):
                for k, (view, a_z, b_z) in enumerate(self._views(c)):
                    self._pieces[(c, k)].undo(view, d[a_z:b_z])
            self._pieces.clear()
        elif isinstance(spec, Coordinate):
            old, self._coord_old = self._coord_old, None
            assert old is not None, "perturb() saved the coordinate's value"
            self.tensors[spec.tensor].view(-1)[spec.index] = old

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
        factor = self._factor(spec.seed, spec.noise)
        for c in range(self.n_chunks):
            z = self._raw(spec.seed, spec.noise, c)  # the same float32 products delta() forms
            d_old, d_new = z.mul(old.scale * factor), z.mul_(spec.scale * factor)
            for k, (view, a_z, b_z) in enumerate(self._views(c)):
                self._pieces[(c, k)].move(view, d_old[a_z:b_z], d_new[a_z:b_z], self.exact)
        self._active = spec

    @contextlib.contextmanager
    def perturbed(self, spec: Spec) -> Iterator[None]:
        """``with space.perturbed(spec): loss = ...`` — applied on entry, exactly undone on exit."""
        self.perturb(spec)
        try:
            yield
        finally:
            self.restore()

    def _deltas(self, spec: Direction) -> Iterator[tuple[int, torch.Tensor]]:
        for c in range(self.n_chunks):
            yield c, self.delta(spec.seed, spec.noise, c, spec.scale)

    @property
    def repair_bytes(self) -> int:
        """Memory held by the repair lists of the applied perturbation."""
        return sum(p.nbytes for p in self._pieces.values())

    # ---------------------------------------------------------------- updates
    @torch.no_grad()
    def add_(self, terms: Sequence[tuple[int, float, str]], decay: float = 0.0) -> None:
        """θ ← (1 − decay)·θ (tensors of ≥ 2 dims) + Σ_j coef_j·z(seed_j): a seed-based update.

        ``terms``: ``[(seed, coef, noise), ...]``; each chunk's sum is formed in fp32 and added once.
        """
        self._require_clean("update")
        if decay:
            for p in self.tensors:
                if p.dim() >= 2:
                    p.mul_(1.0 - decay)
        for c in range(self.n_chunks if terms else 0):
            acc: torch.Tensor | None = None
            for seed, coef, noise in terms:
                d = self.delta(seed, noise, c, coef)
                acc = d if acc is None else acc.add_(d)
            assert acc is not None, "terms is non-empty"
            for view, a_z, b_z in self._views(c):
                view.copy_(_plus(view, acc[a_z:b_z]))
        self.version += 1

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

    def _require_clean(self, what: str) -> None:
        if self._active is not None:
            raise RuntimeError(f"ModelParams: cannot {what} while a perturbation is applied")

    # ---------------------------------------------------------------- batched
    @torch.no_grad()
    def stacked(self, specs: Sequence[Spec], tensors: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
        """``{name: (K, *shape)}``: K perturbed copies of the chosen tensors (K·P memory), for vmap.

        Each copy holds exactly the values the in-place path would apply.
        """
        if tensors is None and self._flat is not None:
            return self._stacked_flat(self._flat, specs)
        chosen = list(range(len(self.tensors))) if tensors is None else list(tensors)
        flats = {ti: self.tensors[ti].detach().reshape(1, -1).repeat(len(specs), 1) for ti in chosen}
        for k, spec in enumerate(specs):
            if isinstance(spec, Direction):
                for c, d in self._deltas(spec):
                    for ti, a_t, b_t, a_z, b_z in self.layout.pieces[c]:
                        if ti in flats:
                            flats[ti][k, a_t:b_t] = _plus(flats[ti][k, a_t:b_t], d[a_z:b_z])
            elif isinstance(spec, Coordinate) and spec.tensor in flats:
                flats[spec.tensor][k, spec.index] += spec.scale
            elif not isinstance(spec, (Clean, Coordinate)):
                raise TypeError(f"ModelParams: cannot stack a {spec.kind} candidate")
        return {self.names[ti]: f.view(len(specs), *self.tensors[ti].shape) for ti, f in flats.items()}

    def _stacked_flat(self, flat: torch.Tensor, specs: Sequence[Spec]) -> dict[str, torch.Tensor]:
        """:meth:`stacked` over the flat buffer ``flat``: one row per copy, one slice op per chunk."""
        rows = flat.detach().unsqueeze(0).repeat(len(specs), 1)
        offsets = self.layout.offsets
        for k, spec in enumerate(specs):
            if isinstance(spec, Direction):
                for c, d in self._deltas(spec):
                    a, b = self.layout.chunks[c]
                    rows[k, a:b] = _plus(rows[k, a:b], d)
            elif isinstance(spec, Coordinate):
                rows[k, offsets[spec.tensor] + spec.index] += spec.scale
            elif not isinstance(spec, Clean):
                raise TypeError(f"ModelParams: cannot stack a {spec.kind} candidate")
        return {n: rows[:, offsets[t]:offsets[t + 1]].view(len(specs), *p.shape)
                for t, (n, p) in enumerate(zip(self.names, self.tensors))}

    # ------------------------------------------------------------------ masks
    def set_mask(self, mask: dict[str, torch.Tensor | None]) -> None:
        """Restrict perturbations and updates to the True entries (``None``: the whole tensor)."""
        if not isinstance(mask, dict):
            raise TypeError("ModelParams: mask must be a dict {parameter name: bool tensor}")
        for name, m in mask.items():
            ti = self.index(name)
            if m is not None:
                m = torch.as_tensor(m, device=self.device)
                if m.dtype != torch.bool or m.shape != self.tensors[ti].shape:
                    raise ValueError(f"ModelParams: mask for {name!r} must be a bool tensor of shape "
                                     f"{tuple(self.tensors[ti].shape)}, got {m.dtype} {tuple(m.shape)}")
            self.masks[ti] = m
        self._mask_changed()

    def _mask_changed(self) -> None:
        self._sphere.clear()
        if all(m is None for m in self.masks):
            self._mask_flat = None
            return
        self._mask_flat = torch.cat([torch.ones(p.numel(), dtype=torch.bool, device=self.device) if m is None
                                     else m.reshape(-1) for p, m in zip(self.tensors, self.masks)])

    @torch.no_grad()
    def magnitude_mask(self, sparsity: float) -> None:
        """Sparse MeZO: in each ≥ 2-D tensor keep the (1 − sparsity) fraction of smallest |θ|."""
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"magnitude_mask: sparsity must be in [0, 1), got {sparsity!r}")
        masks: dict[str, torch.Tensor | None] = {}
        for name, p in zip(self.names, self.tensors):
            if p.dim() < 2:
                continue
            k = max(1, round((1.0 - sparsity) * p.numel()))
            threshold = p.detach().abs().view(-1).float().kthvalue(k).values
            masks[name] = p.detach().abs() <= threshold
        self.set_mask(masks)

    def random_mask(self, density: float | Sequence[float], generator: torch.Generator) -> None:
        """A random mask per tensor with the given density (one float, or one per tensor)."""
        if isinstance(density, (int, float, np.number)):
            dens = [float(density)] * len(self.tensors)
        else:
            dens = [float(d) for d in density]
        if len(dens) != len(self.tensors) or not all(0.0 < d <= 1.0 for d in dens):
            raise ValueError(f"random_mask: density must be in (0, 1], one value or {len(self.tensors)}")
        masks: dict[str, torch.Tensor | None] = {}
        for name, p, d in zip(self.names, self.tensors, dens):
            keep = torch.randperm(p.numel(), generator=generator)[: max(1, round(d * p.numel()))]
            m = torch.zeros(p.numel(), dtype=torch.bool)
            m[keep] = True
            masks[name] = m.view(p.shape).to(self.device)
        self.set_mask(masks)

    # ----------------------------------------------------------------- layers
    def noise_layers(self) -> list[tuple[str, torch.nn.Module, int | None, int | None]]:
        """Linear / Conv1d / Conv2d / HF Conv1D modules with a selected weight or bias, in order.

        ``(name, module, weight index or None, bias index or None)``: where the likelihood-ratio
        estimator injects noise and which selected tensors its estimate covers.
        """
        ids = {id(p): i for i, p in enumerate(self.tensors)}
        out = []
        for name, mod in self.module.named_modules():
            if isinstance(mod, LAYER_TYPES) or type(mod).__name__ == "Conv1D":
                w = ids.get(id(getattr(mod, "weight", None)))
                b = ids.get(id(getattr(mod, "bias", None)))
                if w is not None or b is not None:
                    out.append((name, mod, w, b))
        return out

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Copies of the selected tensors and masks (the whole mutable state of the space)."""
        self._require_clean("save state")
        return {"names": list(self.names), "tensors": [p.detach().clone() for p in self.tensors],
                "masks": [None if m is None else m.clone() for m in self.masks]}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        self._require_clean("load state")
        if list(state["names"]) != self.names:
            raise ValueError("ModelParams.load_state_dict: the state selects other parameters")
        for p, v in zip(self.tensors, state["tensors"]):
            v = torch.as_tensor(v)
            if v.shape != p.shape:
                raise ValueError(f"ModelParams.load_state_dict: shape {tuple(v.shape)} for {tuple(p.shape)}")
            p.copy_(v.to(p.device, p.dtype))
        self.masks = [None if m is None else torch.as_tensor(m).to(self.device) for m in state["masks"]]
        self._mask_changed()
        self.version += 1


def _flatten(tensors: list[torch.nn.Parameter]) -> torch.Tensor | None:
    """Re-home the tensors as views of one contiguous buffer (same dtype and device), so a noise chunk
    spanning many small tensors is one slice; ``None`` (tensors left as they are) otherwise."""
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


def _plus(p: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    return p + d if p.dtype == torch.float32 else (p.float() + d).to(p.dtype)
