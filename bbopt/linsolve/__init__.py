"""Iterative linear solvers whose cost (iterations) a bandit learns to minimise.

SOR in lexicographic order (:func:`sor`), vectorised red–black SOR for matrices with a
2-colourable graph such as 5-point stencils (:func:`redblack_sor`), conjugate gradients with an optional SSOR preconditioner
(:func:`pcg`), Young's optimal relaxation factor (:func:`young_omega`, an oracle
baseline) and its cheap estimate (:func:`estimate_jacobi_radius`, :func:`sor_rate`). Every solver stops on ``‖b − Ax‖ / ‖b‖ < tol``, on ``maxiter`` or on
divergence, and reports a :class:`SolveResult`; a diverged solve costs ``maxiter``.
"""

from bbopt.linsolve.pcg import SSORPreconditioner, pcg
from bbopt.linsolve.redblack import RedBlackSplit, Stencil5, redblack_sor, two_colouring
from bbopt.linsolve.result import SolveResult
from bbopt.linsolve.sor import SORSweep, sor
from bbopt.linsolve.young import (
    beta_of_omega,
    estimate_jacobi_radius,
    jacobi_spectral_radius,
    sor_rate,
    young_omega,
)

__all__ = [
    "RedBlackSplit", "SORSweep", "SSORPreconditioner", "SolveResult", "Stencil5", "beta_of_omega",
    "estimate_jacobi_radius", "jacobi_spectral_radius", "pcg", "redblack_sor", "sor", "sor_rate", "two_colouring",
    "young_omega",
]
