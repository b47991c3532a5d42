"""What a :class:`~bbopt.params.ModelParams` candidate is: a small spec, never a parameter vector.

Every spec carries ``step``, the ask/tell step that made it. The step also names the mini-batch
the problem evaluates it on, so a loss is a pure function of (parameters, spec): a replayed or
resumed run evaluates exactly what the original did.

- :class:`Clean` ``(step)``: θ itself.
- :class:`Direction` ``(step, seed, scale, noise)``: θ + scale·z, with z regenerated from ``seed``
  (``gaussian``, ``rademacher``, ``sphere``: uniform on the sphere of radius √d, or a low-rank
  kind ``lowrank:<r>`` / ``subspace:<r>``, :mod:`bbopt.lowrank`).
- :class:`Coordinate` ``(step, tensor, index, scale)``: θ + scale·e_i, one coordinate (CGE).
- :class:`Tangent` ``(step, seed, h, noise)``: the forward-gradient probe. Its value is the
  first-order model L(θ) + h·∇L·z computed with one jvp, so a ±h pair gives ∇L·z exactly.
- :class:`NoisyCopy` ``(step, seed, copy, copies, sigma, layer, antithetic, baseline)``: copy
  ``copy`` of a ``copies``-times replicated batch with N(0, σ²) noise on the outputs of noise
  layer ``layer`` (−1: all of them; likelihood ratio).
  Evaluating it fills ``out`` with the score-function sums a scalar loss cannot carry.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from typing import Any, ClassVar

from bbopt.lowrank import parse_kind

NOISE_KINDS = ("gaussian", "rademacher", "sphere")


class Spec:
    """Base of all candidate specs (each a dataclass whose first field is ``step``)."""

    kind: ClassVar[str] = ""
    step: int
    # declared for type checkers: every concrete spec is a dataclass (``fields`` accepts it)
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def to_json(self) -> dict:
        # not dataclasses.asdict: it would deep-copy a NoisyCopy's attached tensors
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "out"}}


@dataclass(frozen=True)
class Clean(Spec):
    kind: ClassVar[str] = "clean"
    step: int


@dataclass(frozen=True)
class Direction(Spec):
    kind: ClassVar[str] = "direction"
    step: int
    seed: int = 0
    scale: float = 0.0
    noise: str = "gaussian"


@dataclass(frozen=True)
class Coordinate(Spec):
    kind: ClassVar[str] = "coordinate"
    step: int
    tensor: int = 0
    index: int = 0
    scale: float = 0.0


@dataclass(frozen=True)
class Tangent(Spec):
    kind: ClassVar[str] = "tangent"
    step: int
    seed: int = 0
    h: float = 1e-3
    noise: str = "gaussian"


@dataclass(eq=False)
class NoisyCopy(Spec):
    """Mutable on purpose: the problem attaches ``out`` (per-layer sums) when it evaluates."""

    kind: ClassVar[str] = "noisy"
    step: int
    seed: int = 0
    copy: int = 0
    copies: int = 1
    sigma: float = 0.1
    layer: int = -1
    antithetic: bool = True
    baseline: bool = True
    out: Any = field(default=None, compare=False, repr=False)

    def key(self) -> tuple:
        """Copies sharing this key are one replicated forward."""
        return (self.step, self.seed, self.copies, self.sigma, self.layer, self.antithetic, self.baseline)


SPECS: dict[str, type[Spec]] = {c.kind: c for c in (Clean, Direction, Coordinate, Tangent, NoisyCopy)}


def spec_from_json(value: Any) -> Spec:
    """Rebuild a spec from :meth:`Spec.to_json`; ValueError names what is wrong."""
    if not isinstance(value, dict) or value.get("kind") not in SPECS:
        raise ValueError(f"ModelParams: a candidate must be a dict with kind in {sorted(SPECS)}, got {value!r}")
    cls = SPECS[value["kind"]]
    names = {f.name for f in fields(cls)} - {"out"}
    extra = set(value) - names - {"kind"}
    if extra:
        raise ValueError(f"ModelParams: unknown fields {sorted(extra)} for a {value['kind']} candidate")
    return check_spec(cls(**{k: v for k, v in value.items() if k != "kind"}))


def check_spec(spec: Any, n_tensors: int | None = None) -> Spec:
    """``spec`` if its fields are valid, else ValueError naming the field."""
    if not isinstance(spec, Spec):
        raise TypeError(f"ModelParams: candidates are perturbation specs (bbopt.perturbations), got {type(spec).__name__}")
    _int(spec.step, "step")
    if isinstance(spec, (Direction, Tangent, NoisyCopy)):
        _int(spec.seed, "seed")
    if isinstance(spec, Direction) and spec.noise not in NOISE_KINDS and parse_kind(spec.noise) is None:
        raise ValueError(f"ModelParams: noise must be one of {NOISE_KINDS} or 'lowrank:<r>' / 'subspace:<r>', "
                         f"got {spec.noise!r}")
    if isinstance(spec, Tangent) and spec.noise not in NOISE_KINDS:
        raise ValueError(f"ModelParams: noise must be one of {NOISE_KINDS}, got {spec.noise!r}")
    if isinstance(spec, Coordinate):
        _int(spec.tensor, "tensor")
        _int(spec.index, "index")
        if n_tensors is not None and spec.tensor >= n_tensors:
            raise ValueError(f"ModelParams: coordinate tensor {spec.tensor} out of range [0, {n_tensors})")
    if isinstance(spec, NoisyCopy):
        _int(spec.copies, "copies")
        if not 0 <= spec.copy < spec.copies:
            raise ValueError(f"ModelParams: noisy copy {spec.copy} out of range [0, {spec.copies})")
        if not spec.sigma > 0:
            raise ValueError(f"ModelParams: noisy copy sigma must be > 0, got {spec.sigma}")
    return spec


def _int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"ModelParams: candidate field {name!r} must be a non-negative int, got {value!r}")
