"""Linear-system streams and SORSequenceProblem: instances, solver wiring, logs, baselines,
resume through the loop, problem files."""

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import yaml
from scipy.sparse.linalg import spsolve

from bbopt import make_optimizer, minimize
from bbopt.batch import Batch
from bbopt.linsolve import jacobi_spectral_radius, pcg, redblack_sor, sor
from bbopt.problems import SORSequenceProblem, get
from bbopt.problems.linear_systems import HeatEquationStream, IteratorStream, ShiftedPoissonStream
from bbopt.problems.sor import omega_grid

ROOT = Path(__file__).resolve().parents[2]


def test_poisson_stream_is_a_pure_function_of_seed_and_t():
    a, b = ShiftedPoissonStream(8, "high", seed=3), ShiftedPoissonStream(8, "high", seed=3)
    s1, s2 = a.instance(17), b.instance(17)
    assert (s1.A != s2.A).nnz == 0 and np.array_equal(s1.b, s2.b) and s1.context == a.context(17)
    assert s1.context != a.instance(18).context
    assert ShiftedPoissonStream(8, "high", seed=4).instance(17).context != s1.context
    assert np.linalg.norm(s1.b) <= np.sqrt(64)  # radially truncated Gaussian


@pytest.mark.parametrize("dist, lo, hi", [("high", -0.15, 0.45), ("low", -0.15, 0.45), ("rescaled", 0.01, 0.61)])
def test_poisson_shifts_follow_the_distribution(dist, lo, hi):
    stream = ShiftedPoissonStream(10, dist, seed=0)
    c = np.array([stream.context(t) for t in range(400)])
    assert stream.context_range == pytest.approx((lo, hi))
    assert lo <= c.min() and c.max() <= hi
    mean = {"high": 0.25, "low": 0.25, "rescaled": 0.25}[dist]  # Beta(.5,1.5) and Beta(2,6) both have mean 1/4
    assert np.mean((c - lo) / 0.6) == pytest.approx(mean, abs=0.04)


def test_poisson_instance_is_spd_with_the_stated_jacobi_radius():
    s = ShiftedPoissonStream(10, "high", seed=1).instance(0)
    dense = s.A.toarray()
    assert np.allclose(dense, dense.T) and np.linalg.eigvalsh(dense).min() > 0
    assert s.jacobi_radius == pytest.approx(jacobi_spectral_radius(s.A), rel=1e-10)


def test_indefinite_shift_distributions_are_refused():
    with pytest.raises(ValueError, match="indefinite.*rescaled"):
        ShiftedPoissonStream(50, "high")
    ShiftedPoissonStream(50, "rescaled")


def test_heat_stream_is_crank_nicolson_and_sequential():
    stream = HeatEquationStream(nx=8, steps=5, dt=0.01)
    s0 = stream.instance(0)
    k = stream.context(0)
    L = stream.laplacian
    eye = sp.identity(49)
    assert abs(s0.A - (eye - 0.5 * 0.01 * k * L)).max() < 1e-12
    assert np.allclose(s0.b - 0.01 * stream.forcing(0.005, stream.points), (eye + 0.5 * 0.01 * k * L) @ stream.u0)
    assert np.array_equal(s0.x0, stream.u0) and k == pytest.approx(0.1 * np.sin(2 * np.pi * 0.005))
    with pytest.raises(ValueError, match="sequential"):
        stream.instance(1)
    x = spsolve(sp.csc_matrix(s0.A), s0.b)
    stream.advance(0, x)
    saved = stream.state_dict()
    fresh = HeatEquationStream(nx=8, steps=5, dt=0.01)
    fresh.load_state_dict(saved)
    assert np.array_equal(fresh.instance(1).b, stream.instance(1).b)


def test_user_streams_function_and_iterator():
    A = ShiftedPoissonStream(5, seed=0).instance(0).A

    def fn(t):
        return A, np.full(25, 1.0 + t), 0.1 * t

    problem = SORSequenceProblem(fn, n_omegas=5, context_range=(0, 1))
    assert problem.context(3) == pytest.approx(0.3)
    it = IteratorStream((A, np.ones(25) * t, t) for t in range(10))
    assert it.instance(2).context == 2 and it.instance(2).context == 2
    with pytest.raises(ValueError, match="cannot go back"):
        it.instance(1)
    again = IteratorStream((A, np.ones(25) * t, t) for t in range(10))
    again.load_state_dict(it.state_dict())
    assert again.instance(3).context == 3
    with pytest.raises(TypeError, match="tuple"):
        SORSequenceProblem(lambda t: "nope").evaluate(Batch([0], np.array([0]), round=0))


def test_redblack_on_a_user_stream_builds_the_split_from_the_matrix():
    """A user's (A, b, context) stream with variable-coefficient 5-point matrices (no stencil)
    runs red–black SOR, coloured from A's graph (issue 11, defect 11: it used to be refused)."""
    from tests.test_linsolve import variable_coefficient_matrix

    def stream(t):
        A = variable_coefficient_matrix(6, seed=t)
        return A, np.random.default_rng(t).standard_normal(36), float(t)

    problem = SORSequenceProblem(stream, solver="redblack", n_omegas=4, context_range=(0, 10))
    losses = problem.evaluate(Batch([0, 1], np.array([1, 3]), round=2))
    A, b, _ = stream(2)
    assert losses.tolist() == [redblack_sor(A, b, problem.space.values[a]).iterations for a in (1, 3)]
    assert problem.log()["converged"].all()
    result = minimize(problem, "chebcb", 6, seed=0, progress=False)
    assert np.isfinite(result.history.losses()).all()


def test_redblack_on_a_matrix_without_red_black_ordering_says_why():
    nine = sp.csr_matrix(9 * sp.eye(9) - sp.kron(sp.diags([1.0, 1.0, 1.0], [-1, 0, 1], (3, 3)),
                                                  sp.diags([1.0, 1.0, 1.0], [-1, 0, 1], (3, 3))))
    problem = SORSequenceProblem(lambda t: (nine, np.ones(9), 0.0), solver="redblack", n_omegas=3,
                                 context_range=(0, 1))
    with pytest.raises(ValueError, match="2-colourable.*solver='sor'"):
        problem.evaluate(Batch([0], np.array([0]), round=0))


@pytest.mark.parametrize("solver, fn", [("sor", sor), ("redblack", None), ("ssor-pcg", pcg)])
def test_evaluate_costs_are_the_solver_iterations(solver, fn):
    problem = get("sor-poisson", m=8, seed=2, solver=solver, n_omegas=4)
    system = problem.stream.instance(5)
    w = problem.space.values[2]
    if fn is None:
        expected = redblack_sor(system.stencil, system.b, w).iterations
    else:
        expected = fn(system.A, system.b, w).iterations
    losses = problem.evaluate(Batch([0, 1], np.array([2, 2]), round=5))
    assert losses.tolist() == [expected, expected]
    log = problem.log()
    assert log["round"].tolist() == [5, 5] and log["omega"].tolist() == [w, w]
    assert log["context"][0] == system.context and log["converged"].all()


def test_evaluate_needs_a_round_and_time_costs_are_seconds():
    problem = get("sor-poisson", m=6, seed=0, cost="time", n_omegas=3)
    with pytest.raises(ValueError, match="round"):
        problem.evaluate(np.array([0]))
    seconds = problem.evaluate(Batch([0], np.array([1]), round=0))
    assert 0 < seconds[0] < 1 and seconds[0] == problem.log()["seconds"][0]


def test_bad_options_name_the_field():
    with pytest.raises(ValueError, match="solver"):
        get("sor-poisson", solver="jacobi")
    with pytest.raises(ValueError, match="cost"):
        get("sor-poisson", cost="flops")
    with pytest.raises(ValueError, match="omegas"):
        get("sor-poisson", omegas=[1.0, 2.5])
    with pytest.raises(ValueError, match="grid"):
        get("sor-poisson", grid="cubic")


def test_log_grid_is_dense_near_two():
    w = omega_grid(10, 1.0, 1.99, "log")
    assert w[0] == pytest.approx(1.0) and w[-1] == pytest.approx(1.99)
    assert np.all(np.diff(w) > 0) and np.diff(w)[-1] < np.diff(w)[0]


def test_summary_baselines_are_consistent():
    problem = get("sor-poisson", m=8, seed=0, distribution="high")
    minimize(problem, "tsallis-inf", 30, seed=0, progress=False)
    s = problem.summary(baselines=True)
    assert s["systems"] == 30 and s["not_converged"] == 0
    assert s["instance_optimal_grid"] <= s["best_fixed"]["mean_iterations"] <= s["omega_1"]
    assert s["best_fixed"]["mean_iterations"] <= s["mean_iterations"]
    assert abs(s["instance_optimal_young"] - s["instance_optimal_grid"]) < 0.2 * s["instance_optimal_grid"]
    assert 1.5 <= s["best_fixed"]["omega"] <= 1.9
    full = problem.cost_table([0, 1])
    assert np.array_equal(problem.cost_table([0, 1], arms=[0, 3]), full[:, [0, 3]])


@pytest.mark.parametrize("name, kwargs, options", [
    ("sor-poisson", {"m": 8, "seed": 1}, {"context_range": (-0.15, 0.45)}),
    ("sor-heat", {"nx": 10, "steps": 40}, {"context_range": (0.0, 10.0), "cost_offset": 0}),
])
def test_resume_continues_identically(tmp_path, name, kwargs, options):
    full = minimize(get(name, **kwargs), "chebcb", 24, seed=5, options=options, progress=False)
    stop = lambda info: info.n_evals >= 10  # noqa: E731
    run = tmp_path / "run"
    minimize(get(name, **kwargs), "chebcb", 24, seed=5, options=options, progress=False, run_dir=run,
             callbacks=[stop])
    problem = get(name, **kwargs)
    resumed = minimize(problem, "chebcb", 24, seed=5, options=options, progress=False, run_dir=run, resume=True)
    assert resumed.history.losses().tolist() == full.history.losses().tolist()
    assert problem.log()["round"].tolist() == list(range(24))
    lines = (run / "systems.csv").read_text().splitlines()
    assert lines[0] == "round,context,arm,omega,iterations,seconds,converged" and len(lines) == 25


@pytest.mark.parametrize("path", sorted(ROOT.glob("problems/sor_*.yaml")), ids=lambda p: p.name)
def test_problem_files_build_and_run(path):
    config = yaml.safe_load(path.read_text())
    spec = dict(config["problem"])
    spec.pop("baselines", None)
    problem = get(spec.pop("name"), **spec)
    options = {k: v for k, v in config["optimizer"].items() if k != "name"}
    make_optimizer(config["optimizer"]["name"], problem.space, seed=0, **options)
    result = minimize(problem, config["optimizer"]["name"], 3, seed=0, options=options, progress=False)
    assert result.n_evals == 3 and np.isfinite(result.history.losses()).all()
