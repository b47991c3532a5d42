"""What a solve reports, and the stopping rule every solver shares."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class SolveResult:
    """``x: (n,)``; ``iterations`` is the cost (``maxiter`` when not converged or diverged)."""

    x: np.ndarray
    iterations: int
    converged: bool
    diverged: bool
    residual: float  # final ‖b − Ax‖ / ‖b‖


def check_controls(tol: float, maxiter: int, div_tol: float) -> None:
    """ValueError naming the field for a bad tolerance, cap or divergence threshold."""
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 1:
        raise ValueError(f"maxiter must be a positive integer, got {maxiter!r}")
    if not (isinstance(div_tol, (int, float)) and div_tol > 1):
        raise ValueError(f"div_tol must be a number > 1, got {div_tol!r}")


def check_omega(omega: float, low: float = 0.0) -> float:
    """ω must lie in (low, 2): outside it SOR/SSOR diverge for every SPD matrix."""
    try:
        w = float(omega)
    except (TypeError, ValueError):
        raise TypeError(f"omega must be a number, got {type(omega).__name__}") from None
    if not (low < w < 2.0):
        raise ValueError(f"omega must lie in ({low:g}, 2), got {omega!r}")
    return w


class Monitor:
    """Relative-residual stopping rule: converged, diverged (non-finite or blown up) or going on."""

    def __init__(self, b: np.ndarray, tol: float, div_tol: float):
        self.bnorm = float(np.linalg.norm(b))
        self.tol, self.div_tol = tol, div_tol
        self.rel = math.inf

    def status(self, r: np.ndarray) -> str:
        """'converged', 'diverged' or 'running' for the current residual ``r: (n,)``."""
        rnorm = float(np.linalg.norm(r))
        self.rel = rnorm / self.bnorm if self.bnorm > 0 else rnorm
        if not math.isfinite(self.rel) or self.rel > self.div_tol:
            return "diverged"
        return "converged" if self.rel < self.tol else "running"

    def result(self, x: np.ndarray, k: int, status: str, maxiter: int) -> SolveResult:
        done = status == "converged"
        return SolveResult(x, k if done else int(maxiter), done, status == "diverged", self.rel)
