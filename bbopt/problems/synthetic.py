"""Synthetic test functions with a declared optimum, vectorised over a batch ``(n, d)``.

Definitions follow the standard forms (e.g. Surjanovic & Bingham's library of test
functions); BBOB f1–f24 come from the COCO platform through ``ioh`` or ``cocoex``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bbopt.batch import Batch, candidates_of
from bbopt.options import integer, one_of
from bbopt.problem import Problem, check_losses
from bbopt.spaces import Box


class Synthetic(Problem):
    """A closed-form test function on ``[lower, upper]^dim`` with known ``optimum``."""

    default_bounds: tuple[float, float] = (-5.0, 5.0)

    def __init__(self, dim: int = 10, lower: float | None = None, upper: float | None = None):
        lo, hi = self.default_bounds
        self.space = Box(lo if lower is None else lower, hi if upper is None else upper, dim=dim)
        self.dim = self.space.dim

    def evaluate(self, batch: Batch | Any) -> np.ndarray:
        return self.function(self.space.validate(candidates_of(batch)))

    def function(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        return {**super().describe(), "dim": self.dim}


class Sphere(Synthetic):
    """f(x) = Σ xᵢ²; optimum 0 at the origin."""

    optimum = 0.0

    def function(self, x: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", x, x)


class Rosenbrock(Synthetic):
    """f(x) = Σ 100(xᵢ₊₁ − xᵢ²)² + (1 − xᵢ)²; optimum 0 at (1, …, 1); a curved valley."""

    optimum = 0.0
    default_bounds = (-2.048, 2.048)

    def __init__(self, dim: int = 10, lower: float | None = None, upper: float | None = None):
        integer(dim, "dim", "rosenbrock", minimum=2)
        super().__init__(dim, lower, upper)

    def function(self, x: np.ndarray) -> np.ndarray:
        return np.sum(100.0 * (x[:, 1:] - x[:, :-1] ** 2) ** 2 + (1.0 - x[:, :-1]) ** 2, axis=1)


class Rastrigin(Synthetic):
    """f(x) = 10d + Σ (xᵢ² − 10 cos 2πxᵢ); optimum 0 at the origin; highly multimodal."""

    optimum = 0.0
    default_bounds = (-5.12, 5.12)

    def function(self, x: np.ndarray) -> np.ndarray:
        return 10.0 * x.shape[1] + np.sum(x**2 - 10.0 * np.cos(2 * np.pi * x), axis=1)


class Ackley(Synthetic):
    """Ackley's function (a = 20, b = 0.2, c = 2π); optimum 0 at the origin."""

    optimum = 0.0
    default_bounds = (-32.768, 32.768)

    def function(self, x: np.ndarray) -> np.ndarray:
        d = x.shape[1]
        term1 = -20.0 * np.exp(-0.2 * np.sqrt(np.sum(x**2, axis=1) / d))
        term2 = -np.exp(np.sum(np.cos(2 * np.pi * x), axis=1) / d)
        return term1 + term2 + 20.0 + np.e


class StyblinskiTang(Synthetic):
    """f(x) = ½ Σ (xᵢ⁴ − 16xᵢ² + 5xᵢ); additive, optimum −39.166166·d at xᵢ = −2.903534
    (the smaller root of 4x³ − 32x + 5; Surjanovic & Bingham list −39.16599·d)."""

    default_bounds = (-5.0, 5.0)
    x_star = -2.903534027771177
    optimum_per_dim = -39.16616570377142  # ½ (x⁴ − 16x² + 5x) at x_star

    def __init__(self, dim: int = 10, lower: float | None = None, upper: float | None = None):
        super().__init__(dim, lower, upper)
        self.optimum = self.optimum_per_dim * self.dim

    def function(self, x: np.ndarray) -> np.ndarray:
        return 0.5 * np.sum(x**4 - 16.0 * x**2 + 5.0 * x, axis=1)


class Hartmann6(Synthetic):
    """Hartmann-6 on [0, 1]^dim: the 6-D function of the first six variables, the other
    dim − 6 are inert (the RDUCB paper's "Hartmann-6 in 20-D": 14 dummy variables); optimum
    −3.32237 at (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573, 0, …)."""

    optimum = -3.3223680114155147
    default_bounds = (0.0, 1.0)
    x_star = np.array([0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730054])
    alpha = np.array([1.0, 1.2, 3.0, 3.2])
    A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]], dtype=float)
    P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]], dtype=float)

    def __init__(self, dim: int = 6, lower: float | None = None, upper: float | None = None):
        integer(dim, "dim", "hartmann6", minimum=6)
        super().__init__(dim, lower, upper)

    def function(self, x: np.ndarray) -> np.ndarray:
        inner = np.einsum("kj,nkj->nk", self.A, (x[:, None, :6] - self.P[None]) ** 2)
        return -np.exp(-inner) @ self.alpha


class BBOB(Problem):
    """BBOB function ``function`` (1–24) of the COCO suite, one instance, on [−5, 5]^dim.

    ``backend``: ``"ioh"`` (default; also supplies f_opt) or ``"cocoex"`` (COCO's own code;
    f_opt is then read from ioh, as cocoex hides it — the two agree to ~1e-13).
    ``soft_box``: COCO defines f on all of R^d and [−5, 5]^d is only where the optimum
    lies, so by default the box is soft (strategies may step outside); ``False`` makes
    it a hard constraint.
    """

    def __init__(self, function: int = 1, dim: int = 10, instance: int = 1, backend: str = "ioh",
                 soft_box: bool = True):
        integer(function, "function", "bbob", minimum=1, maximum=24)
        integer(dim, "dim", "bbob", minimum=1, maximum=10**5)
        integer(instance, "instance", "bbob", minimum=1)
        one_of(backend, "backend", "bbob", ("ioh", "cocoex"))
        one_of(soft_box, "soft_box", "bbob", (True, False))
        try:
            import ioh
        except ImportError:
            raise ImportError("BBOB problems need the bbob extra: pip install 'bbopt[bbob]'") from None
        self.function_id, self.dim, self.instance, self.backend = function, int(dim), int(instance), backend
        self._ioh = ioh.get_problem(function, instance, self.dim, ioh.ProblemClass.BBOB)
        self.optimum = float(self._ioh.optimum.y)
        # COCO defines f on all of R^d; [-5, 5]^d is where the optimum lies
        self.space = Box(-5.0, 5.0, dim=self.dim, soft=bool(soft_box))
        self._f = self._ioh
        if backend == "cocoex":
            import cocoex

            suite = cocoex.Suite("bbob", f"instances:{instance}", f"dimensions:{self.dim} function_indices:{function}")
            self._f = next(iter(suite))

    def evaluate(self, batch: Batch | Any) -> np.ndarray:
        x = self.space.validate(candidates_of(batch))
        return check_losses([self._f(row) for row in x], len(x), f"bbob f{self.function_id}")

    def describe(self) -> dict:
        return {**super().describe(), "function": self.function_id, "instance": self.instance, "backend": self.backend}
