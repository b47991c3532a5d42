"""Streams of linear systems A_t x = b_t for solver-parameter tuning ("Learning to Relax",
Khodak et al., ICLR 2024): shifted 2-D Poisson problems, variable-coefficient diffusion
problems, a Crank–Nicolson heat equation with time-varying diffusion, and user-supplied streams.

A stream gives ``instance(t)`` (a :class:`LinearSystem`) and ``context(t)`` (a number the
learner sees before the solve, or None). I.i.d. streams make instance t a pure function
of (seed, t), so evaluation is deterministic and resume-safe. Sequential streams
(``stateful = True``: the heat equation, iterators) move on with ``advance(t, x)`` after
system t is solved and carry their position in ``state_dict``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from bbopt.linsolve import Stencil5
from bbopt.seeding import as_seed_sequence, child_seed

#: name -> (offset, scale, a, b): c = offset + scale · Beta(a, b)
SHIFT_DISTRIBUTIONS = {
    "high": (-0.15, 0.6, 0.5, 1.5),  # the paper's high-variance shifts (10×10 grid)
    "low": (-0.15, 0.6, 2.0, 6.0),  # the paper's low-variance shifts
    "rescaled": (0.01, 0.6, 0.5, 1.5),  # high variance moved up so larger grids stay SPD
}


@dataclass
class LinearSystem:
    """``A: (n, n)`` sparse SPD, ``b: (n,)``; optional ``x0`` (warm start), ``stencil`` (a 5-point
    operator equal to A: enables red–black SOR) and ``jacobi_radius`` (β, for Young's ω*)."""

    A: sp.csr_matrix
    b: np.ndarray
    context: float | None = None
    x0: np.ndarray | None = None
    stencil: Stencil5 | None = None
    jacobi_radius: float | None = None


class Stream:
    """Base: i.i.d. streams override ``instance`` (and ``context`` when it is cheaper)."""

    stateful = False
    context_range: tuple[float, float] | None = None

    def instance(self, t: int) -> LinearSystem:
        raise NotImplementedError

    def context(self, t: int) -> float | None:
        return self.instance(t).context

    def advance(self, t: int, x: np.ndarray) -> None:
        """Called with the solution of system t (sequential streams move on)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """I.i.d. streams have nothing to restore."""

    def describe(self) -> dict:
        return {"stream": type(self).__name__}


def poisson_min_eigenvalue(m: int) -> float:
    """Smallest eigenvalue of the 5-point Laplacian (diagonal 4) on an m×m interior grid."""
    return 4.0 - 4.0 * math.cos(math.pi / (m + 1))


class ShiftedPoissonStream(Stream):
    """A_t = Δ_h + c_t I on an m×m grid (Δ_h: diagonal 4, off-diagonal −1), c_t = offset +
    scale·Beta(a, b); b_t a standard Gaussian radially truncated to ‖b‖ ≤ √n (rejection).
    Context = c_t. Distributions whose support would make A indefinite are refused."""

    def __init__(self, m: int = 10, distribution: str = "high", seed: int = 0, offset: float | None = None,
                 scale: float | None = None, beta: tuple[float, float] | None = None):
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 2:
            raise ValueError(f"m (grid points per side) must be an integer ≥ 2, got {m!r}")
        if distribution not in SHIFT_DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {sorted(SHIFT_DISTRIBUTIONS)}, got {distribution!r}")
        d_off, d_scale, a, b = SHIFT_DISTRIBUTIONS[distribution]
        self.offset = float(d_off if offset is None else offset)
        self.scale = float(d_scale if scale is None else scale)
        self.a, self.b = (a, b) if beta is None else (float(beta[0]), float(beta[1]))
        if not (self.scale > 0 and self.a > 0 and self.b > 0):
            raise ValueError(f"scale and beta=(a, b) must be positive, got scale={self.scale}, beta={(self.a, self.b)}")
        self.m, self.n = int(m), int(m) ** 2
        lam = poisson_min_eigenvalue(self.m)
        if self.offset + lam <= 0:
            raise ValueError(
                f"shifts c ≥ offset={self.offset:g} make A + cI indefinite on a {m}×{m} grid (smallest "
                f"eigenvalue of A is {lam:.4g}); use offset > {-lam:.4g}, e.g. distribution='rescaled'")
        self.seq = as_seed_sequence(seed)
        self.context_range = (self.offset, self.offset + self.scale)

    def _rng(self, t: int) -> np.random.Generator:
        return np.random.default_rng(child_seed(self.seq, int(t)))

    def context(self, t: int) -> float:
        return self.offset + self.scale * float(self._rng(t).beta(self.a, self.b))

    def instance(self, t: int) -> LinearSystem:
        rng = self._rng(t)
        c = self.offset + self.scale * float(rng.beta(self.a, self.b))
        while True:
            b = rng.standard_normal(self.n)
            if np.linalg.norm(b) <= math.sqrt(self.n):
                break
        stencil = Stencil5((self.m, self.m), 4.0 + c, 1.0)
        beta = 4.0 * math.cos(math.pi / (self.m + 1)) / (4.0 + c)
        return LinearSystem(stencil.matrix(), b, c, None, stencil, beta)

    def describe(self) -> dict:
        return {"stream": "shifted-poisson", "m": self.m, "shift": f"{self.offset:g} + {self.scale:g}·Beta({self.a:g}, {self.b:g})"}


def smooth_field(rng: np.random.Generator, points: np.ndarray, modes: int = 6) -> np.ndarray:
    """A random smooth field on ``points: (n, 2)`` with zero mean and max |g| = 1: ``modes``
    cosines of random low frequencies (1–3 half-waves per side), amplitudes ∝ 1/k."""
    g = np.zeros(points.shape[0])
    for k in range(1, modes + 1):
        p, q = rng.integers(1, 4, size=2)
        g += rng.standard_normal() / k * np.cos(math.pi * (p * points[:, 0] + q * points[:, 1]) + rng.uniform(0, 2 * math.pi))
    g -= g.mean()
    return g / max(float(np.abs(g).max()), 1e-12)


class DiffusionStream(Stream):
    """Variable-coefficient systems: −∇·(κ_t ∇u) + c_t u on the unit square (zero boundary),
    m×m interior points, 5-point finite volumes scaled by h² (face coefficients = harmonic
    means of κ_t at the two points; boundary faces take the point's κ_t). With κ ≡ 1 this is
    :class:`ShiftedPoissonStream`'s A = Δ_h + cI.

    κ_t = exp(s_t g_t): g_t a random smooth field (:func:`smooth_field`), s_t ~ U(0, ½ ln
    ``contrast``) so max κ/min κ ≤ ``contrast``, geometric mean 1. c_t = offset + scale·Beta(a, b)
    is the context. The field varies in space and across systems and is not in the context,
    so c_t fixes the best ω only roughly (the matrices are still 2-cyclic: red–black SOR on
    them is consistently ordered, and Young's ω* from each system's own Jacobi radius is exact).
    b_t as in :class:`ShiftedPoissonStream`.
    """

    def __init__(self, m: int = 24, seed: int = 0, contrast: float = 100.0, offset: float = 0.01,
                 scale: float = 0.6, beta: tuple[float, float] = (0.5, 1.5)):
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 2:
            raise ValueError(f"m (grid points per side) must be an integer ≥ 2, got {m!r}")
        if not (isinstance(contrast, (int, float)) and contrast >= 1):
            raise ValueError(f"contrast (max κ / min κ) must be a number ≥ 1, got {contrast!r}")
        if not (offset > 0 and scale > 0 and min(beta) > 0):
            raise ValueError(f"offset, scale and beta=(a, b) must be positive, got {offset}, {scale}, {beta}")
        self.m, self.n, self.contrast = int(m), int(m) ** 2, float(contrast)
        self.offset, self.scale, self.a, self.b = float(offset), float(scale), float(beta[0]), float(beta[1])
        self.seq = as_seed_sequence(seed)
        self.context_range = (self.offset, self.offset + self.scale)
        h = 1.0 / (self.m + 1)
        ij = np.arange(1, self.m + 1) * h
        self.points = np.stack(np.meshgrid(ij, ij, indexing="ij"), axis=-1).reshape(-1, 2)

    def _rng(self, t: int) -> np.random.Generator:
        return np.random.default_rng(child_seed(self.seq, int(t)))

    def context(self, t: int) -> float:
        return self.offset + self.scale * float(self._rng(t).beta(self.a, self.b))

    def kappa(self, rng: np.random.Generator) -> np.ndarray:
        """κ on the grid ``(m, m)`` for the next system drawn from ``rng``."""
        s = rng.uniform(0.0, 0.5 * math.log(self.contrast))
        return np.exp(s * smooth_field(rng, self.points)).reshape(self.m, self.m)

    def instance(self, t: int) -> LinearSystem:
        rng = self._rng(t)
        c = self.offset + self.scale * float(rng.beta(self.a, self.b))
        kappa = self.kappa(rng)
        while True:
            b = rng.standard_normal(self.n)
            if np.linalg.norm(b) <= math.sqrt(self.n):
                break
        return LinearSystem(diffusion_matrix(kappa, c), b, c)

    def describe(self) -> dict:
        return {"stream": "diffusion", "m": self.m, "contrast": self.contrast,
                "shift": f"{self.offset:g} + {self.scale:g}·Beta({self.a:g}, {self.b:g})"}


class ImplicitDiffusionStream(DiffusionStream):
    """Implicit time steps of variable-coefficient diffusion: A_t = I + τ_t K_t, K_t the h²-scaled
    −∇·(κ_t ∇·) of :class:`DiffusionStream` (no reaction term), τ_t = Δt/h² log-uniform in
    ``tau_range``; context log10 τ_t. Small τ: A is close to I and cheap preconditioners win;
    large τ: A is a diffusion operator and multigrid wins (the preconditioner choice of S5)."""

    def __init__(self, m: int = 24, seed: int = 0, contrast: float = 100.0,
                 tau_range: tuple[float, float] = (1e-2, 1e3)):
        super().__init__(m, seed, contrast)
        lo, hi = (float(v) for v in tau_range)
        if not (0 < lo < hi):
            raise ValueError(f"tau_range must be (low, high) with 0 < low < high, got {tau_range!r}")
        self.log_tau = (math.log10(lo), math.log10(hi))
        self.context_range = self.log_tau

    def context(self, t: int) -> float:
        return float(self._rng(t).uniform(*self.log_tau))

    def instance(self, t: int) -> LinearSystem:
        rng = self._rng(t)
        log_tau = float(rng.uniform(*self.log_tau))
        kappa = self.kappa(rng)
        while True:
            b = rng.standard_normal(self.n)
            if np.linalg.norm(b) <= math.sqrt(self.n):
                break
        A = sp.csr_matrix(sp.identity(self.n) + 10.0**log_tau * diffusion_matrix(kappa, 0.0))
        A.sort_indices()
        return LinearSystem(A, b, log_tau)

    def describe(self) -> dict:
        return {"stream": "implicit-diffusion", "m": self.m, "contrast": self.contrast,
                "tau": f"10^U({self.log_tau[0]:g}, {self.log_tau[1]:g})"}


def diffusion_matrix(kappa: np.ndarray, c: float) -> sp.csr_matrix:
    """h²·(−∇·κ∇ + c) by 5-point finite volumes on the grid of ``kappa: (m1, m2)`` (zero boundary)."""
    m1, m2 = kappa.shape
    idx = np.arange(m1 * m2).reshape(m1, m2)
    vert = 2.0 * kappa[1:] * kappa[:-1] / (kappa[1:] + kappa[:-1])  # faces between (i, j), (i+1, j)
    horiz = 2.0 * kappa[:, 1:] * kappa[:, :-1] / (kappa[:, 1:] + kappa[:, :-1])
    diag = np.full((m1, m2), c)
    diag[1:] += vert
    diag[:-1] += vert
    diag[:, 1:] += horiz
    diag[:, :-1] += horiz
    diag[0] += kappa[0]
    diag[-1] += kappa[-1]
    diag[:, 0] += kappa[:, 0]
    diag[:, -1] += kappa[:, -1]
    rows = [idx.ravel(), idx[1:].ravel(), idx[:-1].ravel(), idx[:, 1:].ravel(), idx[:, :-1].ravel()]
    cols = [idx.ravel(), idx[:-1].ravel(), idx[1:].ravel(), idx[:, :-1].ravel(), idx[:, 1:].ravel()]
    vals = [diag.ravel(), -vert.ravel(), -vert.ravel(), -horiz.ravel(), -horiz.ravel()]
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m1 * m2,) * 2)
    A.sort_indices()
    return A


def paper_diffusion(t: float) -> float:
    """κ(t) = max(0.1 sin 2πt, −10 sin 2πt): slow diffusion half the period, fast the other half."""
    s = math.sin(2.0 * math.pi * t)
    return max(0.1 * s, -10.0 * s)


def bump(points: np.ndarray, centre: tuple[float, float], radius: float) -> np.ndarray:
    """Smooth bump exp(1 − 1/(1 − r²/radius²)) (0 outside), ``points: (n, 2)``."""
    r2 = np.minimum(1.0, ((points - np.asarray(centre)) ** 2).sum(axis=1) / radius**2)
    with np.errstate(divide="ignore"):
        return np.exp(1.0 - 1.0 / (1.0 - r2))


def paper_forcing(t: float, points: np.ndarray) -> np.ndarray:
    """32 · bump of radius 1/8 circling the centre of the square (8 turns per unit time)."""
    return 32.0 * bump(points, (0.5 + math.cos(16 * math.pi * t) / 4, 0.5 + math.sin(16 * math.pi * t) / 4), 0.125)


class HeatEquationStream(Stream):
    """u_t = κ(t) Δu + f(x, t) on the unit square, zero boundary, (nx − 1)² interior points,
    Crank–Nicolson with κ and f at the half step: (I − ½Δt κ Δ_h) u⁺ = (I + ½Δt κ Δ_h) u + Δt f.
    System t is warm-started from u (the previous solution); context = κ at the half step.
    Sequential: instance t needs the solution of system t − 1 (``advance``)."""

    stateful = True

    def __init__(self, nx: int = 50, steps: int = 1000, dt: float = 1e-3,
                 kappa: Callable[[float], float] = paper_diffusion,
                 forcing: Callable[[float, np.ndarray], np.ndarray] = paper_forcing):
        if isinstance(nx, bool) or not isinstance(nx, (int, np.integer)) or nx < 3:
            raise ValueError(f"nx (grid intervals per side) must be an integer ≥ 3, got {nx!r}")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if not (isinstance(dt, (int, float)) and dt > 0):
            raise ValueError(f"dt must be a positive number, got {dt!r}")
        self.nx, self.steps, self.dt = int(nx), int(steps), float(dt)
        self.kappa, self.forcing = kappa, forcing
        m = self.nx - 1
        h = 1.0 / self.nx
        ij = np.arange(1, self.nx) * h
        self.points = np.stack(np.meshgrid(ij, ij, indexing="ij"), axis=-1).reshape(-1, 2)
        self.laplacian = -Stencil5((m, m), 4.0, 1.0).matrix() / h**2
        self.u0 = bump(self.points, (0.5, 0.5), 0.25)
        kappas = [self.kappa((t + 0.5) * self.dt) for t in range(self.steps)]
        if min(kappas) < 0:
            raise ValueError("kappa(t) must be ≥ 0 (a negative diffusion makes the system indefinite)")
        self.context_range = (float(min(kappas)), float(max(kappas)))
        self.step, self.u = 0, self.u0.copy()

    def context(self, t: int) -> float:
        return float(self.kappa((t + 0.5) * self.dt))

    def instance(self, t: int) -> LinearSystem:
        if t != self.step:
            raise ValueError(f"the heat-equation stream is sequential: asked for step {t} at step {self.step}")
        if t >= self.steps:
            raise ValueError(f"the heat-equation stream has {self.steps} steps; step {t} is past the end")
        half = (t + 0.5) * self.dt
        k = self.context(t)
        m, h2 = self.nx - 1, (1.0 / self.nx) ** 2
        r = 0.5 * self.dt * k / h2
        stencil = Stencil5((m, m), 1.0 + 4.0 * r, r)
        b = self.u + 0.5 * self.dt * k * (self.laplacian @ self.u) + self.dt * self.forcing(half, self.points)
        beta = 4.0 * r * math.cos(math.pi / self.nx) / (1.0 + 4.0 * r)
        return LinearSystem(stencil.matrix(), b, k, self.u.copy(), stencil, beta)

    def advance(self, t: int, x: np.ndarray) -> None:
        if t != self.step:
            raise ValueError(f"advance({t}) at step {self.step}")
        self.u = np.asarray(x, dtype=float).copy()
        self.step += 1

    def state_dict(self) -> dict:
        return {"step": self.step, "u": self.u.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.u = int(state["step"]), np.array(state["u"], dtype=float)

    def describe(self) -> dict:
        return {"stream": "heat-equation", "nx": self.nx, "steps": self.steps, "dt": self.dt}


def _as_system(item: Any, where: str) -> LinearSystem:
    """A LinearSystem from a LinearSystem or an ``(A, b, context)`` / ``(A, b)`` tuple."""
    if isinstance(item, LinearSystem):
        return item
    if not isinstance(item, tuple) or len(item) not in (2, 3):
        raise TypeError(f"{where} must give a LinearSystem or a tuple (A, b, context), got {type(item).__name__}")
    A, b = item[0], np.asarray(item[1], dtype=float).reshape(-1)
    if not sp.issparse(A) and not isinstance(A, np.ndarray):
        raise TypeError(f"{where}: A must be a scipy.sparse matrix or numpy array, got {type(A).__name__}")
    context = None if len(item) == 2 or item[2] is None else float(item[2])
    return LinearSystem(sp.csr_matrix(A, dtype=float), b, context)


class FunctionStream(Stream):
    """A user function ``t -> (A, b, context)`` (or a LinearSystem); pure, so resume-safe."""

    def __init__(self, fn: Callable[[int], Any], context_range: tuple[float, float] | None = None):
        if not callable(fn):
            raise TypeError(f"stream function must be callable, got {type(fn).__name__}")
        self.fn, self.context_range = fn, context_range
        self._cache: tuple[int, LinearSystem] | None = None

    def instance(self, t: int) -> LinearSystem:
        if self._cache is None or self._cache[0] != t:  # context(t) then instance(t): build once
            self._cache = (t, _as_system(self.fn(t), f"stream function at t={t}"))
        return self._cache[1]


class IteratorStream(Stream):
    """Systems from an iterable of ``(A, b, context)``, consumed in order. Sequential: a resumed
    run fast-forwards a fresh iterator; it cannot rewind (use a function of t for that)."""

    stateful = True

    def __init__(self, items: Iterable[Any], context_range: tuple[float, float] | None = None):
        self._it = iter(items)
        self.context_range = context_range
        self.position = 0  # index of the next item the iterator yields
        self._cache: tuple[int, LinearSystem] | None = None

    def instance(self, t: int) -> LinearSystem:
        if self._cache is not None and self._cache[0] == t:
            return self._cache[1]
        if t < self.position:
            raise ValueError(f"stream iterator is at item {self.position}; it cannot go back to {t}")
        for _ in range(t - self.position + 1):
            try:
                item = next(self._it)
            except StopIteration:
                raise ValueError(f"stream iterator ran out after {self.position} systems") from None
            self.position += 1
        self._cache = (t, _as_system(item, f"stream item {t}"))
        return self._cache[1]

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        target = int(state.get("position", 0))
        if target > self.position:
            self.instance(target - 1)
        elif target < self.position:
            raise ValueError(f"cannot restore an iterator stream at item {self.position} back to item {target}")


def as_stream(source: Any, context_range: tuple[float, float] | None = None) -> Stream:
    """A Stream from a Stream, a ``"module:attr"`` name, a function of t, or an iterable."""
    if isinstance(source, str):
        module, _, attr = source.partition(":")
        if not attr:
            raise ValueError(f"stream name must be 'module:attr', got {source!r}")
        try:
            source = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"stream {source!r} could not be loaded: {err}") from None
    if isinstance(source, Stream):
        return source
    if callable(source):
        return FunctionStream(source, context_range)
    if isinstance(source, Iterable):
        return IteratorStream(source, context_range)
    raise TypeError(f"stream must be a Stream, a function t -> (A, b, context) or an iterable, got {type(source).__name__}")
