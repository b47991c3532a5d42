"""ModelParams: a torch module's parameters as a search space that owns its perturbations.

A candidate is a small spec (:mod:`bbopt.perturbations`: a seed and a scale, a coordinate, a
tangent, a noisy copy), never a parameter vector. The space applies a spec to the module in
place and undoes it (:mod:`bbopt.inplace`: noise regenerated in chunks from the seed, three
noise passes per MeZO step), and applies updates θ ← θ + Σ c_j z_j without storing z; batched
evaluation stacks K perturbed copies from the same noise (:func:`stacked_copies`).
Estimators (``bbopt.strategies.zo``) and :class:`~bbopt.problems.TorchProblem` share one
ModelParams, so they agree on which tensors, which mask and which noise.

Selection: ``select`` is None (the parameters with ``requires_grad``, e.g. a peft model's
adapters), ``"all"``, glob patterns on names (``"*.bias"``, ``"*lora_*"``, ``"encoder.layer.5.*"``)
or a predicate ``f(name, param) -> bool``; ``exclude`` takes the same forms. ``mask`` maps
names to bool tensors (only True entries are perturbed and updated); :meth:`magnitude_mask`
builds Sparse MeZO's small-magnitude mask and :meth:`random_mask` DeepZero-style layer masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bbopt.inplace import ChunkedTensors
from bbopt.noise import shift_
from bbopt.param_select import Selector, check_tensors, select_parameters
from bbopt.perturbations import Clean, Coordinate, Direction, Spec, check_spec, spec_from_json
from bbopt.spaces import Space

LAYER_TYPES = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)
#: elements per noise chunk (4 MB of float32 scratch per chunk buffer); see ``benchmarks/zo_speed.py``
DEFAULT_CHUNK = 1 << 18


class ModelParams(ChunkedTensors, Space):
    """The selected parameters of ``module``; ``dim`` counts the perturbed coordinates.

    **It changes the user's module in place** — that is its purpose: the estimators train the
    model you pass (MeZO's memory promise: no copy of θ), and between an evaluation and its
    update the module holds a perturbed θ (``applied`` says which; ``restore()`` undoes it).
    Nothing else is changed unless ``flatten=True``: then the selected tensors are rebound
    (``param.data``) to views of one contiguous buffer, so a noise chunk spanning many small
    tensors is one slice; the ``Parameter`` objects stay the same, their old storage is released
    tensor by tensor (a caller still holding a reference to one keeps it alive).

    ``chunk_size`` caps the transient noise (elements per chunk; three float32 scratch chunks
    are kept). ``exact=True`` restores bit for bit through repair lists (memory and time cost in
    :mod:`bbopt.inplace`); the default is MeZO's own arithmetic round trip.
    """

    compact_candidates = True

    def __init__(self, module: torch.nn.Module, select: Selector = None, *, exclude: Selector = None,
                 mask: dict[str, torch.Tensor | None] | None = None, chunk_size: int = DEFAULT_CHUNK,
                 exact: bool = False, flatten: bool = False):
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"ModelParams: module must be a torch.nn.Module, got {type(module).__name__}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"ModelParams: chunk_size must be a positive int, got {chunk_size!r}")
        self.module = module
        named = select_parameters(module, select, exclude)
        self.names = [n for n, _ in named]
        self.tensors = [p for _, p in named]
        check_tensors(named)
        self.masks = [None] * len(self.tensors)
        self._init_chunks(chunk_size, exact, flatten)
        if mask is not None:
            self.set_mask(mask)

    # ------------------------------------------------------------------ facts
    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.tensors)

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
        self._settle()
        self._sphere.clear()
        if all(m is None for m in self.masks):
            self._unmasked = None
            return
        self._unmasked = torch.cat([torch.zeros(p.numel(), dtype=torch.bool, device=self.device) if m is None
                                    else ~m.reshape(-1) for p, m in zip(self.tensors, self.masks)])

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


@torch.no_grad()
def stacked_copies(space: ModelParams, specs: Sequence[Spec], tensors: Sequence[int] | None = None
                   ) -> dict[str, torch.Tensor]:
    """``{name: (K, *shape)}``: K perturbed copies of the chosen tensors (K·P memory), for vmap.

    Each copy holds exactly the values the in-place path applies (``θ.add_(z, alpha=s)``, one
    rounding; ``addcmul`` forms the same fused product). Directions sharing a seed (a ± pair,
    FZOO's probes around one clean point) draw their noise once: one draw per distinct seed and
    chunk, then one ``addcmul`` per chunk over all the directions' rows.
    """
    space.restore()
    if tensors is not None or any(p.dtype != torch.float32 for p in space.tensors):
        chosen = range(len(space.tensors)) if tensors is None else tensors
        return _stacked_tensors(space, specs, list(chosen))
    theta = torch.cat([p.detach().reshape(-1) for p in space.tensors])
    directions = [k for k, spec in enumerate(specs) if isinstance(spec, Direction)]
    if len(directions) == len(specs):
        rows = _shifted_rows(space, theta, specs)
    else:
        rows = theta.unsqueeze(0).repeat(len(specs), 1)
        if directions:
            rows[directions] = _shifted_rows(space, theta, [specs[k] for k in directions])
    for k, spec in enumerate(specs):
        if isinstance(spec, Coordinate):
            rows[k, space.layout.offsets[spec.tensor] + spec.index] += spec.scale
        elif not isinstance(spec, (Clean, Direction)):
            raise TypeError(f"ModelParams: cannot stack a {spec.kind} candidate")
    offsets = space.layout.offsets
    return {n: rows[:, offsets[t]:offsets[t + 1]].view(len(specs), *p.shape)
            for t, (n, p) in enumerate(zip(space.names, space.tensors))}


def _shifted_rows(space: ModelParams, theta: torch.Tensor, specs: Sequence[Any]) -> torch.Tensor:
    """``(K, N)``: θ + s_k·z_k for directions ``specs``, the noise of each distinct seed drawn once."""
    slot: dict[tuple[int, str], int] = {}
    which = torch.tensor([slot.setdefault((spec.seed, spec.noise), len(slot)) for spec in specs])
    distinct = list(slot)
    rows = torch.empty(len(specs), theta.numel(), dtype=theta.dtype, device=theta.device)
    # z = f·u: the sphere's normalisation f is one number per seed
    factors = [space._factor(seed, kind) for seed, kind in distinct]
    scales = torch.tensor([spec.scale * factors[k] for spec, k in zip(specs, which.tolist())],
                          dtype=torch.float32, device=theta.device)[:, None]
    which = which.to(theta.device)
    drawn = torch.empty(len(distinct), min(space.chunk_size, theta.numel()), dtype=torch.float32, device=theta.device)
    for c, (a, b) in enumerate(space.layout.chunks):
        for k, (seed, kind) in enumerate(distinct):  # each into its own row: no per-draw allocation or stack
            space._raw(seed, kind, c, drawn[k])
        torch.addcmul(theta[a:b], scales, drawn[:, :b - a][which], out=rows[:, a:b])
    return rows


def _stacked_tensors(space: ModelParams, specs: Sequence[Spec], chosen: list[int]) -> dict[str, torch.Tensor]:
    """:func:`stacked_copies` of some tensors only (feature reuse: one layer's coordinates)."""
    flats = {ti: space.tensors[ti].detach().reshape(1, -1).repeat(len(specs), 1) for ti in chosen}
    for k, spec in enumerate(specs):
        if isinstance(spec, Direction):
            for c in range(space.n_chunks):
                z, factor = space.noise_chunk(spec.seed, spec.noise, c)
                for ti, a_t, b_t, a_z, b_z in space.layout.pieces[c]:
                    if ti in flats:
                        shift_(flats[ti][k, a_t:b_t], z[a_z:b_z], spec.scale * factor)
        elif isinstance(spec, Coordinate):
            if spec.tensor in flats:
                flats[spec.tensor][k, spec.index] += spec.scale
        elif not isinstance(spec, Clean):
            raise TypeError(f"ModelParams: cannot stack a {spec.kind} candidate")
    return {space.names[ti]: f.view(len(specs), *space.tensors[ti].shape) for ti, f in flats.items()}
