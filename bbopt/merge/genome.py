"""Genomes: a declarative spec -> a ``Box`` search space and a decoder to a merge :class:`Recipe`.

Following mergekit-evolve's [layer groups × models × filter sets × params] layout (and
Sakana's parameter-space search, arXiv 2403.13187): each :class:`Gene` (``weight``,
``density``, ``t`` or ``lambda``) varies along a chosen subset of the axes ``layer``,
``model`` and ``filter``. The layer axis has one slot per numbered layer (``encoder.layer.3``,
``hidden.0``) plus one own slot for each un-numbered part (embeddings, heads); layers can be
grouped (``layer_granularity``) or drawn from a smooth piecewise-linear curve over ``smooth``
knots to cut the dimension. Decoding: genes -> expand the layer axis (a fixed linear map) ->
broadcast -> transform (identity, clamp, abs, sigmoid, softmax over models) -> one value per
(tensor, model).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from bbopt.merge.operators import check_variant
from bbopt.merge.recipe import METHODS, SPARSIFYING, TASK_VECTOR_METHODS, Recipe
from bbopt.options import OptionError, integer, one_of
from bbopt.spaces import Box

AXES = ("layer", "model", "filter")
TRANSFORMS = ("identity", "clamp", "abs", "sigmoid", "softmax")
DEFAULTS = {"weight": 1.0, "density": 1.0, "t": 0.5, "lambda": 1.0}


@dataclass
class Gene:
    """One merge parameter searched along ``axes``, with genes in ``[lower, upper]``.

    ``out``: the output range of ``clamp`` / ``sigmoid`` (default the gene bounds / (0, 1)).
    ``init``: the start value (default the centre of the bounds). ``smooth``: knots of a
    piecewise-linear curve over the numbered layers (None: one gene per layer group).
    """

    name: str
    axes: tuple[str, ...] = ()
    lower: float = 0.0
    upper: float = 1.0
    transform: str = "identity"
    out: tuple[float, float] | None = None
    init: float | None = None
    smooth: int | None = None

    def __post_init__(self) -> None:
        if self.name not in DEFAULTS:
            raise ValueError(f"gene name must be one of {tuple(DEFAULTS)}, got {self.name!r}")
        self.axes = tuple(self.axes)
        bad = [a for a in self.axes if a not in AXES]
        if bad or len(set(self.axes)) != len(self.axes):
            raise ValueError(f"gene {self.name!r}: axes must be distinct values from {AXES}, got {self.axes}")
        if self.name == "lambda" and self.axes:
            raise ValueError("gene 'lambda' is one global scale: axes must be empty")
        if self.name == "t" and "model" in self.axes:
            raise ValueError("gene 't' (SLERP) has no model axis")
        one_of(self.transform, "transform", f"gene {self.name!r}", TRANSFORMS)
        if self.transform == "softmax" and "model" not in self.axes:
            raise ValueError(f"gene {self.name!r}: softmax normalises over models, so axes must include 'model'")
        if not float(self.lower) < float(self.upper):
            raise ValueError(f"gene {self.name!r}: lower must be < upper, got {self.lower}, {self.upper}")
        if self.smooth is not None and (int(self.smooth) < 2 or "layer" not in self.axes):
            raise ValueError(f"gene {self.name!r}: smooth needs the 'layer' axis and at least 2 knots")
        if self.init is not None and not self.lower <= self.init <= self.upper:
            raise ValueError(f"gene {self.name!r}: init {self.init} is outside [{self.lower}, {self.upper}]")


@dataclass
class GenomeSpec:
    """What is searched: the ``method``, its ``genes``, and how tensors are grouped.

    ``filters``: tensor-name substrings, each its own set on the ``filter`` axis (plus one
    set for everything else). ``groups``: name -> regex for tensors that get their own
    layer slot (overrides the automatic layer detection). ``fixed``: values of parameters
    that are not genes (defaults: weight 1, density 1, t 0.5, lambda 1). ``normalize``,
    ``trim``, ``rescale``, ``sign``: the method's variant options (None: mergekit's default;
    see :class:`~bbopt.merge.recipe.Recipe`).
    """

    method: str
    genes: list[Gene]
    layer_granularity: int = 1
    filters: tuple[str, ...] = ()
    groups: dict[str, str] = field(default_factory=dict)
    fixed: dict[str, float] = field(default_factory=dict)
    normalize: bool | None = None
    trim: str | None = None
    rescale: str | None = None
    sign: str | None = None

    def __post_init__(self) -> None:
        one_of(self.method, "method", "genome", METHODS)
        check_variant(self.method, "genome", trim=self.trim, rescale=self.rescale, sign=self.sign)
        self.genes = [g if isinstance(g, Gene) else Gene(**_gene_kwargs(g)) for g in self.genes]
        names = [g.name for g in self.genes]
        if len(set(names)) != len(names):
            raise ValueError(f"genome: each parameter may appear once among the genes, got {names}")
        users = {"density": SPARSIFYING, "lambda": TASK_VECTOR_METHODS, "t": ("slerp",),
                 "weight": tuple(m for m in METHODS if m != "slerp")}
        for name in [*names, *self.fixed]:
            if name in users and self.method not in users[name]:
                raise OptionError(name, f"genome: {name} is not used by method {self.method!r} (only by "
                                        f"{', '.join(users[name])}); remove it")
        integer(self.layer_granularity, "layer_granularity", "genome", minimum=1)
        unknown = set(self.fixed) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"genome: fixed keys must be among {tuple(DEFAULTS)}, got {sorted(unknown)}")
        self.filters = tuple(self.filters)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | str) -> GenomeSpec:
        """A spec from YAML: ``"per_layer"``, ``{preset: sakana, ...overrides}`` or all fields."""
        if isinstance(d, str):
            return preset(d)
        if not isinstance(d, Mapping):
            raise TypeError(f"genome must be a preset name or a mapping, got {type(d).__name__}")
        d = dict(d)
        if "preset" in d:
            return preset(d.pop("preset"), **d)
        allowed = {f.name for f in fields(cls)}
        unknown = set(d) - allowed
        if unknown:
            raise ValueError(f"genome: unknown keys {sorted(unknown)}; valid: {sorted(allowed)} or 'preset'")
        return cls(**d)

    def bind(self, names: Sequence[str], n_models: int) -> Genome:
        """The genome for these mergeable tensor names and ``n_models`` experts."""
        return Genome(self, list(names), int(n_models))


class Genome:
    """A spec bound to a model: ``space`` (Box), ``x0``, ``decode(x) -> Recipe``, ``describe(x)``."""

    def __init__(self, spec: GenomeSpec, names: list[str], n_models: int):
        if spec.method == "slerp" and n_models != 2:
            raise ValueError(f"genome: slerp merges exactly 2 models, got {n_models}")
        self.spec, self.names, self.n_models = spec, names, n_models
        self.slots, slot_of, numbered = layer_slots(names, spec.groups)
        self.slot_of = np.asarray(slot_of)
        self.filter_of = np.array([_filter_index(n, spec.filters) for n in names])
        self._numbered = np.asarray(numbered)
        self._blocks: list[tuple[Gene, slice, tuple[int, ...], np.ndarray | None]] = []
        lower, upper, x0, start = [], [], [], 0
        for gene in spec.genes:
            expand = self._layer_map(gene) if "layer" in gene.axes else None
            shape = tuple(self._axis_len(a, expand) for a in gene.axes)
            size = int(np.prod(shape)) if shape else 1
            self._blocks.append((gene, slice(start, start + size), shape, expand))
            lower += [gene.lower] * size
            upper += [gene.upper] * size
            x0 += [(gene.lower + gene.upper) / 2 if gene.init is None else gene.init] * size
            start += size
        if start == 0:
            raise ValueError("genome: needs at least one gene")
        self.space = Box(lower, upper)
        self.x0 = np.array(x0)

    @property
    def dim(self) -> int:
        return self.space.dim

    def _axis_len(self, axis: str, expand: np.ndarray | None) -> int:
        if axis == "layer":
            assert expand is not None, "a gene with a 'layer' axis always has a layer map"
            return int(expand.shape[1])
        return self.n_models if axis == "model" else len(self.spec.filters) + 1

    def _layer_map(self, gene: Gene) -> np.ndarray:
        """(n_slots, n_layer_genes): slot values = map @ genes, genes in slot order.

        Un-numbered slots get one gene each; numbered layers one per group of
        ``layer_granularity`` layers, or the knots of a piecewise-linear curve (``smooth``).
        """
        numbered = np.flatnonzero(self._numbered)
        n_knots = int(gene.smooth) if gene.smooth is not None and len(numbered) >= 2 else None  # None: no curve
        g = self.spec.layer_granularity
        cols: list[np.ndarray] = []
        for s in range(len(self.slots)):
            if not self._numbered[s]:
                cols.append(np.eye(len(self.slots))[s])
                continue
            i = int(np.searchsorted(numbered, s))  # position among the numbered layers
            if n_knots is not None and i == 0:
                pos, knots = np.linspace(0.0, 1.0, len(numbered)), np.linspace(0.0, 1.0, n_knots)
                for k in range(n_knots):
                    col = np.zeros(len(self.slots))
                    col[numbered] = np.interp(pos, knots, np.eye(n_knots)[k])
                    cols.append(col)
            elif n_knots is None and i % g == 0:
                col = np.zeros(len(self.slots))
                col[numbered[i:i + g]] = 1.0
                cols.append(col)
        return np.stack(cols, axis=1)

    def values(self, x: np.ndarray, transform: bool = True) -> dict[str, np.ndarray]:
        """Per gene, the (transformed) values over (slot, model, filter): (n_slots, K, F)."""
        x = np.asarray(x, dtype=float).reshape(-1)
        if x.size != self.dim:
            raise ValueError(f"genome: expected a vector of {self.dim} genes, got {x.size}")
        out = {}
        full = (len(self.slots), self.n_models, len(self.spec.filters) + 1)
        for gene, sl, shape, expand in self._blocks:
            v = x[sl].reshape(shape) if shape else x[sl].reshape(())
            axes = list(gene.axes)
            if expand is not None:
                v = np.moveaxis(np.tensordot(expand, v, axes=(1, axes.index("layer"))), 0, axes.index("layer"))
            order = [a for a in AXES if a in axes]
            v = np.transpose(v, [axes.index(a) for a in order]) if axes else v
            v = v.reshape([full[i] if a in axes else 1 for i, a in enumerate(AXES)])
            v = np.broadcast_to(v, full)
            out[gene.name] = _transform(v, gene) if transform else v
        return out

    def project(self, recipe: Recipe) -> np.ndarray:
        """The genome point whose recipe is nearest ``recipe`` (least squares through the layer
        map, before the transforms, whose inverses are applied first), clipped to the box.

        Per (slot, model, filter) the target is the mean of the recipe's per-tensor values."""
        if recipe.method != self.spec.method:
            raise ValueError(f"the recipe's method is {recipe.method!r}, the genome's {self.spec.method!r}")
        arrays = {"weight": recipe.weight, "density": recipe.density,
                  "t": None if recipe.t is None else np.repeat(np.reshape(recipe.t, (-1, 1)), self.n_models, 1),
                  "lambda": np.full((len(self.names), self.n_models), recipe.lam)}
        full = (len(self.slots), self.n_models, len(self.spec.filters) + 1)
        x = self.x0.copy()
        for gene, sl, _, _ in self._blocks:
            per_tensor = arrays[gene.name]
            if per_tensor is None:
                continue
            target, seen = np.zeros(full), np.zeros(full)
            for j in range(len(self.names)):
                target[self.slot_of[j], :, self.filter_of[j]] += per_tensor[j]
                seen[self.slot_of[j], :, self.filter_of[j]] += 1
            target = _inverse(target / np.maximum(seen, 1), gene)
            probe = np.zeros(self.dim)
            columns = []
            for i in range(sl.start, sl.stop):
                probe[:] = 0.0
                probe[i] = 1.0
                columns.append(self.values(probe, transform=False)[gene.name][seen > 0])
            x[sl] = np.linalg.lstsq(np.stack(columns, axis=1), target[seen > 0], rcond=None)[0]
        return np.clip(x, self.space.lower, self.space.upper)

    def decode(self, x: np.ndarray) -> Recipe:
        """The recipe of genome ``x`` (one coefficient per tensor and model)."""
        vals = self.values(x)
        per_tensor = {name: v[self.slot_of, :, self.filter_of] for name, v in vals.items()}
        shape = (len(self.names), self.n_models)

        def get(name: str) -> np.ndarray:
            if name in per_tensor:
                return per_tensor[name]
            return np.full(shape, float(self.spec.fixed.get(name, DEFAULTS[name])))

        lam = float(vals["lambda"].reshape(-1)[0]) if "lambda" in vals else float(self.spec.fixed.get("lambda", 1.0))
        s = self.spec
        return Recipe(s.method, get("weight"), get("density") if s.method in SPARSIFYING else None,
                      get("t")[:, 0] if s.method == "slerp" else None, lam, s.normalize, s.trim, s.rescale, s.sign)

    def describe(self, x: np.ndarray, model_names: Sequence[str] | None = None) -> dict:
        """A YAML-friendly account of genome ``x``: per gene, values by slot / model / filter."""
        models = list(model_names) if model_names is not None else [f"expert{k}" for k in range(self.n_models)]
        filters = [*self.spec.filters, "other"]
        params = {}
        for name, v in self.values(x).items():
            gene = next(g for g in self.spec.genes if g.name == name)
            idx = tuple(slice(None) if a in gene.axes else 0 for a in AXES)
            params[name] = {"axes": list(a for a in AXES if a in gene.axes), "values": np.round(v[idx], 6).tolist()}
        variants = {k: getattr(self.spec, k) for k in ("normalize", "trim", "rescale", "sign")}
        return {"method": self.spec.method, "slots": list(self.slots), "models": models, "filters": filters,
                "fixed": dict(self.spec.fixed), **variants, "params": params, "x": [float(v) for v in np.asarray(x, dtype=float).reshape(-1)]}


def layer_slots(names: Sequence[str], groups: Mapping[str, str] | None = None) -> tuple[list[str], list[int], list[bool]]:
    """Slots of the layer axis in first-appearance order: (slot names, slot of each tensor, numbered?).

    A tensor matching a ``groups`` regex goes to that group's slot; otherwise the prefix up to
    its first numeric name component (``encoder.layer.3``) is a numbered layer slot, and a name
    without one goes to the slot of its first component (``embeddings``, ``head``).
    """
    compiled = [(g, re.compile(p)) for g, p in (groups or {}).items()]
    slots: list[str] = []
    numbered: list[bool] = []
    slot_of = []
    for name in names:
        key, is_num = _slot_key(name, compiled)
        if key not in slots:
            slots.append(key)
            numbered.append(is_num)
        slot_of.append(slots.index(key))
    return slots, slot_of, numbered


def _slot_key(name: str, groups: list[tuple[str, re.Pattern]]) -> tuple[str, bool]:
    for g, pattern in groups:
        if pattern.search(name):
            return g, False
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[: i + 1]), True
    return parts[0], False


def _filter_index(name: str, filters: Sequence[str]) -> int:
    for i, f in enumerate(filters):
        if f in name:
            return i
    return len(filters)


def _transform(v: np.ndarray, gene: Gene) -> np.ndarray:
    if gene.transform == "identity":
        return v
    if gene.transform == "abs":
        return np.abs(v)
    if gene.transform == "clamp":
        lo, hi = gene.out if gene.out is not None else (gene.lower, gene.upper)
        return np.clip(v, lo, hi)
    if gene.transform == "sigmoid":
        lo, hi = gene.out if gene.out is not None else (0.0, 1.0)
        return lo + (hi - lo) / (1.0 + np.exp(-v))
    e = np.exp(v - v.max(axis=1, keepdims=True))  # softmax over the model axis
    return e / e.sum(axis=1, keepdims=True)


def _inverse(v: np.ndarray, gene: Gene) -> np.ndarray:
    """A pre-image of ``v`` under the gene's transform (softmax: logs, up to a shift)."""
    if gene.transform == "sigmoid":
        lo, hi = gene.out if gene.out is not None else (0.0, 1.0)
        p = np.clip((v - lo) / (hi - lo), 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))
    if gene.transform == "softmax":
        return np.log(np.maximum(v, 1e-12))
    return np.abs(v) if gene.transform == "abs" else v


def _gene_kwargs(g: Any) -> dict:
    if not isinstance(g, Mapping):
        raise TypeError(f"genome: each gene must be a Gene or a mapping, got {type(g).__name__}")
    allowed = {f.name for f in fields(Gene)}
    unknown = set(g) - allowed
    if unknown:
        raise ValueError(f"gene: unknown keys {sorted(unknown)}; valid: {sorted(allowed)}")
    return {k: (tuple(v) if k in ("axes", "out") and v is not None else v) for k, v in g.items()}


# -------------------------------------------------------------------------- presets
def _presets() -> dict[str, Any]:
    lm = Gene("lambda", (), 0.0, 2.0)
    return {
        # task arithmetic with one lambda (the lambda-grid baseline's space)
        "global": lambda: GenomeSpec("task_arithmetic", [Gene("weight", (), 0.0, 2.0)]),
        # weights start at 0.5 as in Sakana's and the pilot's runs (ALGORITHMS.md §2)
        "per_model": lambda: GenomeSpec("task_arithmetic", [Gene("weight", ("model",), 0.0, 1.5, init=0.5)]),
        "per_layer": lambda: GenomeSpec("task_arithmetic", [Gene("weight", ("layer", "model"), 0.0, 1.5,
                                                                 init=0.5)]),
        # Sakana PS: per layer slot x per model (weight, density), DARE-TIES, disjoint sum
        "sakana": lambda: GenomeSpec("dare_ties", [Gene("weight", ("layer", "model"), 0.0, 1.0),
                                                   Gene("density", ("layer", "model"), 0.0, 1.0)]),
        "soup": lambda: GenomeSpec("linear", [Gene("weight", ("model",), 0.0, 1.0)]),
        "ties": lambda: GenomeSpec("ties", [Gene("density", (), 0.0, 1.0), lm]),
        "dare": lambda: GenomeSpec("dare_linear", [Gene("density", (), 0.0, 1.0), lm]),
        "slerp": lambda: GenomeSpec("slerp", [Gene("t", ("layer",), 0.0, 1.0)]),
    }


PRESETS = tuple(_presets())


def preset(name: str, **overrides: Any) -> GenomeSpec:
    """A named genome (``PRESETS``), with spec fields or ``smooth=k`` / bounds overridden."""
    table = _presets()
    one_of(name, "preset", "genome", PRESETS)
    spec = table[name]()
    gene_keys = {"smooth", "transform", "lower", "upper", "out", "init"}
    for key in gene_keys & set(overrides):
        value = overrides.pop(key)
        for g in spec.genes:
            if key != "smooth" or "layer" in g.axes:
                setattr(g, key, tuple(value) if key == "out" else value)
        spec.genes = [Gene(**{f.name: getattr(g, f.name) for f in fields(Gene)}) for g in spec.genes]
    allowed = {f.name for f in fields(GenomeSpec)}
    unknown = set(overrides) - allowed
    if unknown:
        raise ValueError(f"genome preset {name!r}: unknown overrides {sorted(unknown)}; valid: "
                         f"{sorted(allowed | gene_keys)}")
    for key, value in overrides.items():
        setattr(spec, key, value)
    spec.__post_init__()
    return spec
