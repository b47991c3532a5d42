"""bbopt.linsolve: SOR (both kernels), red–black SOR, SSOR-PCG and Young's ω*, checked
against scipy's direct solver, against each other and against brute force; the
Eisenstat-trick SSOR-PCG against textbook SSOR-PCG."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

from bbopt.linsolve import (
    RedBlackSplit,
    SORSweep,
    SSORPreconditioner,
    Stencil5,
    jacobi_spectral_radius,
    pcg,
    redblack_sor,
    sor,
    two_colouring,
    young_omega,
)
from bbopt.linsolve.pcg import _Workspace
from bbopt.problems.linear_systems import HeatEquationStream

try:
    import pyamg  # noqa: F401  (the compiled SOR sweep; the sparse triangular kernel works without it)

    HAVE_PYAMG = True
except ImportError:
    HAVE_PYAMG = False
needs_pyamg = pytest.mark.skipif(not HAVE_PYAMG, reason="pyamg not installed")
PYAMG = pytest.param("pyamg", marks=needs_pyamg)


def poisson(m, c=0.0):
    return Stencil5((m, m), 4.0 + c, 1.0)


def rhs(n, seed=0):
    return np.random.default_rng(seed).standard_normal(n)


@pytest.mark.parametrize("kernel", [PYAMG, "triangular"])
@pytest.mark.parametrize("omega", [1.0, 1.5, 1.9])
def test_sor_matches_direct_solve(kernel, omega):
    st = poisson(8, 0.3)
    A, b = st.matrix(), rhs(64)
    res = sor(A, b, omega, kernel=kernel, tol=1e-10)
    assert res.converged and not res.diverged
    exact = spsolve(sp.csc_matrix(A), b)
    assert np.linalg.norm(res.x - exact) / np.linalg.norm(exact) < 1e-8
    assert np.linalg.norm(b - A @ res.x) / np.linalg.norm(b) < 1e-10


@needs_pyamg
def test_kernels_give_same_iterates():
    A, b = poisson(7, 0.1).matrix(), rhs(49, 1)
    x1, x2 = np.zeros(49), np.zeros(49)
    s1, s2 = SORSweep(A, 1.7, "pyamg"), SORSweep(A, 1.7, "triangular")
    for _ in range(5):
        s1.forward(x1, b), s2.forward(x2, b)
        s1.backward(x1, b), s2.backward(x2, b)
    np.testing.assert_allclose(x1, x2, rtol=1e-12, atol=1e-12)
    assert sor(A, b, 1.7, kernel="pyamg").iterations == sor(A, b, 1.7, kernel="triangular").iterations


@needs_pyamg
def test_sor_one_sweep_is_the_triangular_update():
    A, b = poisson(5, 0.0).matrix(), rhs(25, 2)
    x = rhs(25, 3)
    M = sp.diags(A.diagonal() / 1.3) + sp.tril(A, -1)
    expected = x + spsolve(sp.csc_matrix(M), b - A @ x)
    SORSweep(A, 1.3, "pyamg").forward(x, b)
    np.testing.assert_allclose(x, expected, rtol=1e-12)


@pytest.mark.parametrize("omega", [1.0, 1.6])
def test_redblack_matches_direct_solve(omega):
    st = poisson(9, 0.2)
    b = rhs(81, 4)
    res = redblack_sor(st, b, omega, tol=1e-10)
    exact = spsolve(sp.csc_matrix(st.matrix()), b)
    assert res.converged
    assert np.linalg.norm(res.x - exact) / np.linalg.norm(exact) < 1e-8
    assert np.linalg.norm(b - st.matrix() @ res.x) / np.linalg.norm(b) < 1e-10


def test_redblack_one_iteration_is_sor_in_red_black_order():
    m = 6
    A = poisson(m, 0.1).matrix()
    split = RedBlackSplit(A, (m, m))
    perm = np.r_[split.red, split.black]
    Ap = A[perm][:, perm]
    b = rhs(m * m, 5)
    one = redblack_sor(split, b, 1.4, maxiter=1)
    x = np.zeros(m * m)
    SORSweep(Ap, 1.4, "triangular").forward(x, b[perm])
    expected = np.empty(m * m)
    expected[perm] = x
    np.testing.assert_allclose(one.x, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("c", [0.0, 0.01])
def test_redblack_and_lexicographic_agree_at_young_omega(c):
    # Both orderings are consistently ordered: same asymptotic rate at ω*. Near-singular systems
    # (c ≈ 0, long solves) agree within ~7%; with larger shifts the transient dominates and
    # red–black needs up to ~40% fewer iterations (c = 0.3: 42 vs 25), hence never mix orderings.
    st = poisson(30, c)
    b = rhs(900, 6)
    w = young_omega(beta=4 * np.cos(np.pi / 31) / (4 + c))
    lex, rb = sor(st.matrix(), b, w).iterations, redblack_sor(st, b, w).iterations
    assert abs(lex - rb) <= 0.1 * max(lex, rb), (lex, rb)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 1), (3, 4)])
def test_stencil_matrix_matches_its_definition(shape):
    m1, m2 = shape
    diag = np.arange(1.0, m1 * m2 + 1).reshape(shape)
    ref = np.diag(diag.ravel())
    for k in range(m1 * m2):
        i, j = divmod(k, m2)
        for a, c in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
            if 0 <= a < m1 and 0 <= c < m2:
                ref[k, a * m2 + c] = -0.3
    A = Stencil5(shape, diag, 0.3).matrix()
    assert A.has_sorted_indices and np.array_equal(A.toarray(), ref)


def test_split_from_stencil_equals_split_from_matrix():
    st = Stencil5((5, 7), np.linspace(3, 5, 35).reshape(5, 7), 0.7)
    a, b = RedBlackSplit.from_stencil(st), RedBlackSplit(st.matrix(), (5, 7))
    for name in ("red", "black", "d_r", "d_b"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert abs(a.E - b.E).max() == 0 and abs(a.Et - b.Et).max() == 0


def test_redblack_rejects_non_five_point_matrix():
    A = poisson(4).matrix().tolil()
    A[0, 5] = A[5, 0] = -0.5  # (0,0) and (1,1) are both red
    with pytest.raises(ValueError, match="couples two red"):
        redblack_sor(sp.csr_matrix(A), rhs(16), 1.2, shape=(4, 4))


def variable_coefficient_matrix(m, seed=0):
    """5-point finite-volume −∇·(κ∇u) + u on an m×m grid with a random κ per edge: 2-colourable,
    but no Stencil5 (its couplings differ edge by edge)."""
    rng = np.random.default_rng(seed)
    n = m * m
    idx = np.arange(n).reshape(m, m)
    pairs = np.concatenate([np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1),
                            np.stack([idx[:-1].ravel(), idx[1:].ravel()], 1)])
    kappa = np.exp(rng.uniform(-1, 1, len(pairs)))
    off = sp.coo_matrix((-kappa, (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    off = off + off.T
    return sp.csr_matrix(off + sp.diags(1.0 - np.asarray(off.sum(axis=1)).ravel() + 0.01))


def test_two_colouring_of_a_scrambled_bipartite_matrix():
    """No grid, rows in random order: the colours come from A's graph, and red–black SOR on
    them is SOR on A permuted to (red, black) order."""
    A0 = variable_coefficient_matrix(7, seed=1)
    perm = np.random.default_rng(2).permutation(49)
    A = sp.csr_matrix(A0[perm][:, perm])
    red, black = two_colouring(A)
    assert red.size + black.size == 49 and np.intersect1d(red, black).size == 0
    coupled = (A - sp.diags(A.diagonal())).tocoo()
    assert (np.isin(coupled.row, red) != np.isin(coupled.col, red)).all()
    b = rhs(49, 7)
    one = redblack_sor(A, b, 1.3, maxiter=1)
    order = np.r_[red, black]
    x = np.zeros(49)
    SORSweep(A[order][:, order], 1.3, "triangular").forward(x, b[order])
    expected = np.empty(49)
    expected[order] = x
    np.testing.assert_allclose(one.x, expected, rtol=1e-12, atol=1e-14)
    assert redblack_sor(A, b, 1.5, tol=1e-10).converged


def test_two_colouring_refuses_an_odd_cycle_with_the_reason():
    nine_point = sp.csr_matrix(sp.kron(sp.eye(4), sp.eye(4)) * 8 - sp.kron(sp.diags([1.0, 1.0, 1.0], [-1, 0, 1], (4, 4)),
                                                                             sp.diags([1.0, 1.0, 1.0], [-1, 0, 1], (4, 4)))
                               + sp.eye(16))
    with pytest.raises(ValueError, match="2-colourable.*odd cycle.*solver='sor'"):
        two_colouring(nine_point)
    with pytest.raises(ValueError, match="odd cycle"):
        redblack_sor(nine_point, rhs(16), 1.2)
    diagonal = sp.diags(np.arange(1.0, 6.0))  # nothing coupled: every point red
    red, black = two_colouring(diagonal)
    assert red.tolist() == [0, 1, 2, 3, 4] and black.size == 0


def test_ssor_preconditioner_is_the_textbook_matrix():
    A = poisson(5, 0.2).matrix()
    w = 1.35
    D, L = sp.diags(A.diagonal()), sp.tril(A, -1)
    X = (D + w * L).toarray()
    P = X @ np.linalg.inv(D.toarray()) @ X.T / (w * (2 - w))
    r = rhs(25, 7)
    np.testing.assert_allclose(SSORPreconditioner(A, w)(r), np.linalg.solve(P, r), rtol=1e-10)
    np.testing.assert_allclose(SSORPreconditioner(A, w, "triangular")(r), np.linalg.solve(P, r), rtol=1e-10)


@pytest.mark.parametrize("omega", [None, 1.0, 1.5])
def test_pcg_matches_direct_solve_and_ssor_helps(omega):
    A, b = poisson(20, 0.01).matrix(), rhs(400, 8)
    res = pcg(A, b, omega)
    exact = spsolve(sp.csc_matrix(A), b)
    assert res.converged and np.linalg.norm(b - A @ res.x) / np.linalg.norm(b) < 1e-8
    assert np.linalg.norm(res.x - exact) / np.linalg.norm(exact) < 1e-6
    if omega is not None:
        assert res.iterations < pcg(A, b).iterations


def test_pcg_warm_start_at_solution_costs_nothing():
    A, b = poisson(6, 0.1).matrix(), rhs(36, 9)
    exact = spsolve(sp.csc_matrix(A), b)
    assert pcg(A, b, 1.5, x0=exact).iterations == 0


def textbook_pcg(A, b, omega, x0=None, tol=1e-8, maxiter=10_000):
    """Axelsson's SSOR-PCG as textbooks write it: ``z = P_ω⁻¹ r`` by two SOR sweeps, one product
    with A per iteration, stop on the updated residual. Returns ``(x, iterations, status)``."""
    A = sp.csr_matrix(A)
    precond = SSORPreconditioner(A, omega)
    x = np.zeros_like(b) if x0 is None else np.array(x0, dtype=float)
    bnorm = np.linalg.norm(b) or 1.0
    r = b - A @ x
    if np.linalg.norm(r) / bnorm < tol:
        return x, 0, "converged"
    z = precond(r)
    p, rz = z.copy(), r @ z
    for k in range(1, maxiter + 1):
        Ap = A @ p
        pAp = p @ Ap
        if not pAp > 0:
            return x, k - 1, "breakdown"
        alpha = rz / pAp
        x, r = x + alpha * p, r - alpha * Ap
        if np.linalg.norm(r) / bnorm < tol:
            return x, k, "converged"
        z = precond(r)
        rz, rz_old = r @ z, rz
        p = z + (rz / rz_old) * p
    return x, maxiter, "maxiter"


def spd_systems():
    """SPD matrices with a positive diagonal: 5-point (diagonally dominant) and an irregular one
    that is not diagonally dominant (the residual bound gives nothing there: checked every step)."""
    rng = np.random.default_rng(11)
    S = sp.random(150, 150, density=0.03, random_state=rng)
    return {
        "poisson": poisson(14).matrix(),
        "shifted-poisson": poisson(14, 0.3).matrix(),
        "heat-stiff": Stencil5((14, 14), 1 + 4 * 50.0, 50.0).matrix(),  # Crank–Nicolson, κΔt/2h² = 50
        "variable": Stencil5((9, 17), 4 + 3 * rng.random((9, 17)), 1.0).matrix(),
        "irregular": sp.csr_matrix(S @ S.T + 0.05 * sp.eye(150)),
    }


@pytest.mark.parametrize("name", ["poisson", "shifted-poisson", "heat-stiff", "variable", "irregular"])
@pytest.mark.parametrize("omega", [0.4, 1.0, 1.6, 1.95])
def test_eisenstat_pcg_matches_textbook_ssor_pcg(name, omega):
    A = spd_systems()[name]
    b = rhs(A.shape[0], 12)
    x_ref, k_ref, status = textbook_pcg(A, b, omega)
    res = pcg(A, b, omega)
    assert status == "converged" and res.converged and not res.diverged
    assert abs(res.iterations - k_ref) <= 1, (res.iterations, k_ref)
    assert np.linalg.norm(b - A @ res.x) / np.linalg.norm(b) == pytest.approx(res.residual) and res.residual < 1e-8
    assert np.linalg.norm(res.x - x_ref) <= 1e-6 * np.linalg.norm(x_ref)


@pytest.mark.parametrize("name", ["poisson", "heat-stiff", "irregular"])
def test_eisenstat_pcg_warm_start_and_converged_start(name):
    A = spd_systems()[name]
    b = rhs(A.shape[0], 13)
    exact = spsolve(sp.csc_matrix(A), b)
    x0 = exact + 1e-4 * rhs(A.shape[0], 14)
    _, k_ref, _ = textbook_pcg(A, b, 1.5, x0)
    warm, cold = pcg(A, b, 1.5, x0), pcg(A, b, 1.5)
    assert warm.converged and abs(warm.iterations - k_ref) <= 1 and warm.iterations < cold.iterations
    done = pcg(A, b, 1.5, x0=exact)
    assert done.iterations == 0 and done.converged and np.array_equal(done.x, exact)


def test_eisenstat_pcg_on_a_heat_trajectory_matches_textbook_step_by_step():
    stream = HeatEquationStream(nx=12, steps=40, dt=1e-2)  # κ(t) sweeps 0 → 10: values change, pattern stays
    for t in range(40):
        system = stream.instance(t)
        omega = 1.0 + 0.9 * (t % 7) / 6
        _, k_ref, _ = textbook_pcg(system.A, system.b, omega, system.x0)
        res = pcg(system.A, system.b, omega, system.x0)
        assert res.converged and abs(res.iterations - k_ref) <= 1, (t, res.iterations, k_ref)
        stream.advance(t, res.x)


def test_eisenstat_pcg_breaks_down_on_an_indefinite_matrix():
    A = poisson(10, -0.5).matrix()  # positive diagonal, λ_min < 0
    _, _, status = textbook_pcg(A, rhs(100), 1.5, maxiter=5000)
    res = pcg(A, rhs(100), 1.5, maxiter=5000)
    assert status == "breakdown" and res.diverged and not res.converged and res.iterations == 5000


def test_eisenstat_pcg_kernels_duplicates_and_zero_rhs():
    A = poisson(9, 0.1).matrix()
    b = rhs(81, 15)
    fast, lu = pcg(A, b, 1.3), pcg(A, b, 1.3, kernel="triangular")
    assert fast.iterations == lu.iterations and np.allclose(fast.x, lu.x, rtol=1e-10, atol=1e-12)
    n = A.shape[0]  # a second, unsorted entry (i, i) = 1 in every row: non-canonical A + I
    rows = [(np.r_[A.indices[A.indptr[i]:A.indptr[i + 1]], i], np.r_[A.data[A.indptr[i]:A.indptr[i + 1]], 1.0])
            for i in range(n)]
    dup = sp.csr_matrix((np.concatenate([d for _, d in rows]), np.concatenate([j for j, _ in rows]),
                         np.r_[0, np.cumsum([j.size for j, _ in rows])]), shape=A.shape)
    assert not dup.has_canonical_format
    same, shifted = pcg(dup, b, 1.3), pcg(A + sp.eye(n), b, 1.3)
    assert same.iterations == shifted.iterations and np.allclose(same.x, shifted.x, rtol=1e-10)
    x0 = rhs(81, 16)  # b = 0: the stopping rule is on ‖Ax‖ itself
    _, k_ref, _ = textbook_pcg(A, np.zeros(81), 1.3, x0)
    zero = pcg(A, np.zeros(81), 1.3, x0)
    assert zero.converged and abs(zero.iterations - k_ref) <= 1 and np.linalg.norm(A @ zero.x) < 1e-8


def test_level_scheduled_triangular_solves_are_exact():
    for A in spd_systems().values():
        A = sp.csr_matrix(A)
        A.sum_duplicates()
        n, w = A.shape[0], 1.3
        D = sp.diags(A.diagonal() / w)
        ws = _Workspace(A.indptr, A.indices)
        ws.load(A, w, "auto")
        v, out = rhs(n, 17), np.empty(n)
        ws.solve_lower(v, out)
        np.testing.assert_allclose(out, spsolve(sp.csc_matrix(D + sp.tril(A, -1)), v), rtol=1e-10, atol=1e-12)
        ws.solve_upper(v, out)
        np.testing.assert_allclose(out, spsolve(sp.csc_matrix(D + sp.triu(A, 1)), v), rtol=1e-10, atol=1e-12)
        levels = np.empty(n, dtype=int)  # the order is topological: each row after the rows it reads
        levels[ws.low_order] = np.arange(n)
        low = sp.tril(A, -1).tocoo()
        assert (levels[low.row] > levels[low.col]).all()


def test_young_omega_matches_brute_force():
    st = poisson(6, 0.1)
    A = st.matrix().toarray()
    D, L = np.diag(np.diag(A)), np.tril(A, -1)
    U = A - D - L

    def rho(w):
        C = np.linalg.solve(D / w + L, (1 / w - 1) * D - U)
        return np.abs(np.linalg.eigvals(C)).max()

    grid = np.linspace(1.0, 1.99, 991)
    radii = np.array([rho(w) for w in grid])
    w_star = young_omega(st.matrix())
    assert abs(grid[radii.argmin()] - w_star) < 2e-3
    assert rho(w_star) == pytest.approx(w_star - 1, abs=1e-3)  # Young: ρ(C_ω*) = ω* − 1
    assert rho(w_star) <= radii.min() + 1e-3


def test_jacobi_radius_dense_and_sparse_paths_agree_with_formula():
    for m in (10, 45):  # 100 unknowns: dense eigensolve; 2025: Lanczos
        beta = jacobi_spectral_radius(poisson(m, 0.2).matrix())
        assert beta == pytest.approx(4 * np.cos(np.pi / (m + 1)) / 4.2, rel=1e-8)


def test_divergence_is_detected_and_costs_the_cap():
    A = poisson(10, -0.5).matrix()  # λ_min < 0: indefinite, SOR diverges
    for res in (sor(A, rhs(100), 1.5, maxiter=5000), redblack_sor(A, rhs(100), 1.5, shape=(10, 10), maxiter=5000),
                pcg(A, rhs(100), None, maxiter=5000)):
        assert not res.converged and res.iterations == 5000
    assert sor(A, rhs(100), 1.5, maxiter=5000).diverged


def test_cap_without_divergence():
    res = sor(poisson(20, 0.0).matrix(), rhs(400), 1.0, maxiter=10)
    assert res.iterations == 10 and not res.converged and not res.diverged


@pytest.mark.parametrize("kwargs, match", [
    ({"omega": 2.0}, "omega"), ({"omega": 1.5, "tol": 0}, "tol"), ({"omega": 1.5, "maxiter": 0}, "maxiter"),
    ({"omega": 1.5, "kernel": "fast"}, "kernel"),
])
def test_bad_input_names_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sor(poisson(3).matrix(), rhs(9), **kwargs)


def test_young_rejects_nonconvergent_jacobi():
    with pytest.raises(ValueError, match="Young"):
        young_omega(beta=1.2)
