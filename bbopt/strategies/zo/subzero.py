"""SubZero: two-point SPSA in random layer-wise subspaces (Yu et al., ICCV 2025, "SubZero: Random
Subspace Zeroth-Order Optimization for Memory-Efficient LLM Fine-Tuning", arXiv 2410.08989).

Every weight W (m×n) is perturbed along Z = U S Vᵀ·√(mn)/r: U ∈ R^{m×r}, V ∈ R^{n×r} with
orthonormal columns (QR of Gaussians), kept for ``subspace_every`` steps; S ∈ R^{r×r} Gaussian,
fresh every step; 0-/1-D tensors along Gaussian z. The step is LOZO's (:mod:`.lozo`)::

    c_j = (L(θ + εZ_j) − L(θ − εZ_j)) / 2ε,    θ ← θ − lr·((1/q) Σ_j c_j Z_j + wd·θ)

Z is scaled to unit mean-square entries (the paper's unscaled U S Vᵀ with its ε is ``eps`` =
ε·√(mn)/r per weight, up to that per-layer factor). Chosen over MeZO-SVRG because its estimate
is seed-representable and evaluated at θ alone: in place, memory stays at inference plus the
factors r·(m + n) + r² per weight, where MeZO-SVRG needs an anchor copy of θ (+P) and forwards at
that anchor, and its large-batch anchor estimate every few steps.
"""

from __future__ import annotations

from bbopt.strategies.zo.lozo import LOZO


class SubZero(LOZO):
    """SubZero: SPSA along U·S·Vᵀ per weight (orthonormal U, V kept for ``subspace_every`` steps)."""

    name = "subzero"
    rules = ("sgd",)
    family = "subspace"
