"""Young's structural prior: the Lanczos estimate of the Jacobi radius, the SOR rate it
implies, the problem's ``context_source: young`` (its matvecs charged) and ChebCB's ``prior``."""

import math

import numpy as np
import pytest

from bbopt import make_optimizer, minimize
from bbopt.batch import Batch
from bbopt.linsolve import (
    Stencil5,
    estimate_jacobi_radius,
    jacobi_spectral_radius,
    sor,
    sor_rate,
    young_omega,
)
from bbopt.linsolve.young import beta_of_omega
from bbopt.options import OptionError
from bbopt.problems import get
from bbopt.problems.linear_systems import DiffusionStream
from bbopt.spaces import Choice


@pytest.mark.parametrize("m", [8, 20])
def test_estimate_is_exact_on_2d_poisson_against_the_analytic_radius(m):
    """The 5-point Laplacian is consistently ordered with β = cos(π/(m+1)); its lowest mode is
    smooth, so a few Lanczos steps from D^{1/2}·1 find it, from below."""
    A = Stencil5((m, m), 4.0, 1.0).matrix()
    beta = math.cos(math.pi / (m + 1))
    for steps, tol in ((3, 0.015), (6, 5e-3), (m, 1e-6), (3 * m, 1e-12)):
        est = estimate_jacobi_radius(A, steps)
        assert beta - tol <= est <= beta + 1e-12, (steps, est, beta)
    assert young_omega(beta=estimate_jacobi_radius(A, 3 * m)) == pytest.approx(young_omega(A), abs=1e-8)


def test_sor_rate_is_youngs_formula_and_matches_the_iteration_matrix():
    st = Stencil5((6, 6), 4.1, 1.0)
    A = st.matrix().toarray()
    D, L = np.diag(np.diag(A)), np.tril(A, -1)
    beta = jacobi_spectral_radius(st.matrix())
    w_star = young_omega(beta=beta)
    assert beta_of_omega(w_star) == pytest.approx(beta, rel=1e-12)
    omegas = np.array([1.0, 1.3, w_star, 1.8])
    for w, rho in zip(omegas, sor_rate(omegas, beta)):
        C = np.linalg.solve(D / w + L, (1 / w - 1) * D - np.triu(A, 1))
        assert rho == pytest.approx(np.abs(np.linalg.eigvals(C)).max(), abs=2e-3)
    assert sor_rate([1.0], beta)[0] == pytest.approx(beta**2)  # Gauss–Seidel: ρ = β²
    assert sor_rate(omegas, beta).argmin() == 2


def test_young_context_is_the_estimated_omega_and_its_matvecs_are_charged():
    plain = get("sor-poisson", m=10, seed=3)
    young = get("sor-poisson", m=10, seed=3, context_source="young", young_steps=5)
    assert young.context_range == (1.0, 2.0)
    system = young.stream.instance(4)
    expected = young_omega(beta=estimate_jacobi_radius(system.A, 5))
    assert young.context(4) == expected and abs(expected - young_omega(beta=system.jacobi_radius)) < 0.05
    batch = Batch(ids=np.arange(2), x=np.array([3, 12]))
    batch.round = 4
    costs = young.evaluate(batch)
    solves = [sor(system.A, system.b, young.space.values[a]).iterations for a in (3, 12)]
    assert costs.tolist() == [s + 5.0 for s in solves]  # 5 Lanczos matvecs ≈ 5 SOR sweeps, on every solve
    assert plain.evaluate(batch).tolist() == [float(s) for s in solves]
    with pytest.raises(OptionError, match="young_steps"):
        get("sor-poisson", m=10, young_steps=4)  # unused without the Young context
    with pytest.raises(OptionError, match="context_source"):
        get("sor-poisson", m=10, context_source="shift")


def test_chebcb_prior_option_is_checked():
    space = Choice([1.0, 1.5, 1.9])
    with pytest.raises(OptionError, match="prior"):
        make_optimizer("chebcb", space, context_range=(1, 2), prior="Young")
    with pytest.raises(OptionError, match="prior"):
        make_optimizer("chebcb", Choice(["a", "b"]), context_range=(1, 2), prior="young")
    with pytest.raises(OptionError, match="prior"):
        make_optimizer("tsallis-inf-cb", space, context_range=(1, 2), prior="young")


def test_prior_ranks_arms_by_youngs_rate_before_any_cost():
    space = Choice(list(np.linspace(1.0, 1.95, 20)))
    opt = make_optimizer("chebcb", space, seed=0, context_range=(1, 2), prior="young")
    g = opt.prior_costs(np.array([1.6, 1.8]))
    assert np.asarray(space.values)[g.argmin(axis=1)].tolist() == pytest.approx([1.6, 1.8])


def test_young_prior_learns_faster_than_chebcb_alone():
    """The first 60 systems of the paper's stream: with the prior, ChebCB pays far less (its
    Lanczos matvecs included) — the point of the prior is the short horizon."""
    problem = get("sor-poisson", m=10, seed=0, context_source="young")
    assert problem.recommended_options("chebcb") == {"prior": "young"}
    with_prior = minimize(problem, "chebcb", 60, seed=0, progress=False)  # the problem recommends prior: young
    base = minimize(get("sor-poisson", m=10, seed=0), "chebcb", 60, seed=0, progress=False)
    assert with_prior.history.losses().sum() < 0.6 * base.history.losses().sum()


def test_diffusion_stream_varies_in_space_and_across_systems():
    stream = DiffusionStream(m=8, seed=1)
    a, b = stream.instance(0), stream.instance(1)
    assert stream.instance(0).A.nnz == a.A.nnz and (stream.instance(0).A != a.A).nnz == 0  # pure in (seed, t)
    for s in (a, b):
        A = s.A.toarray()
        assert np.allclose(A, A.T) and np.linalg.eigvalsh(A).min() > 0
        off = -A[np.arange(63), np.arange(1, 64)]
        assert off.max() > 1.5 * off[off > 0].min()  # κ varies in space
        assert stream.context_range[0] <= s.context <= stream.context_range[1]
    assert not np.allclose(a.A.toarray() - a.context * np.eye(64), b.A.toarray() - b.context * np.eye(64))
    flat = DiffusionStream(m=8, seed=1, contrast=1.0).instance(0)  # κ ≡ 1: the shifted Poisson matrix
    assert np.allclose(flat.A.toarray(), Stencil5((8, 8), 4.0 + flat.context, 1.0).matrix().toarray())
