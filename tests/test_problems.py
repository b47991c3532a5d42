import sys

import numpy as np
import pytest

import bbopt.problems as problems
from bbopt import Box, FunctionProblem
from bbopt.problems.synthetic import Hartmann6, StyblinskiTang

SYNTHETIC_OPTIMA = {
    "sphere": lambda d: np.zeros(d),
    "rosenbrock": lambda d: np.ones(d),
    "rastrigin": lambda d: np.zeros(d),
    "ackley": lambda d: np.zeros(d),
    "styblinski-tang": lambda d: np.full(d, StyblinskiTang.x_star),
    "hartmann6": lambda d: np.concatenate([Hartmann6.x_star, np.full(d - 6, 0.5)]),
}


@pytest.mark.parametrize("name", sorted(SYNTHETIC_OPTIMA))
def test_declared_optimum_is_attained_and_is_a_local_minimum(name):
    problem = problems.get(name, dim=8)
    x_opt = SYNTHETIC_OPTIMA[name](8)
    f_opt = problem.evaluate(x_opt[None])[0]
    assert f_opt == pytest.approx(problem.optimum, abs=1e-7)
    rng = np.random.default_rng(0)
    nearby = x_opt + 1e-3 * rng.standard_normal((50, 8))
    assert (problem.evaluate(nearby) >= problem.optimum - 1e-12).all()


def test_bbob_backends_agree_and_declare_the_optimum():
    ioh_f = problems.get("bbob", function=8, dim=5, instance=1, backend="ioh")
    coco_f = problems.get("bbob", function=8, dim=5, instance=1, backend="cocoex")
    x = np.random.default_rng(1).uniform(-5, 5, (20, 5))
    np.testing.assert_allclose(ioh_f.evaluate(x), coco_f.evaluate(x), rtol=1e-10)
    assert (ioh_f.evaluate(x) >= ioh_f.optimum).all()


def test_function_problem_scalar_and_vectorised_agree():
    space = Box(-1, 1, dim=3)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3))
    scalar = FunctionProblem(lambda v: float(np.sum(v**2)), space)
    vector = FunctionProblem(lambda X: np.sum(X**2, axis=1), space, vectorized=True)
    np.testing.assert_allclose(scalar.evaluate(x), vector.evaluate(x))


@pytest.mark.parametrize("bad, message", [(lambda v: None, "expected one number"),
                                          (lambda v: "1.0", "expected one number"),
                                          (lambda v: np.ones(2), "expected one number")])
def test_function_problem_rejects_non_numbers(bad, message):
    with pytest.raises(TypeError, match=message):
        FunctionProblem(bad, Box(0, 1, dim=2)).evaluate(np.zeros((1, 2)))


def test_vectorised_function_with_wrong_shape_is_an_error():
    problem = FunctionProblem(lambda X: np.zeros(len(X) + 1), Box(0, 1, dim=2), vectorized=True)
    with pytest.raises(ValueError, match="one loss per candidate"):
        problem.evaluate(np.zeros((3, 2)))


def test_module_attr_problems_and_unknown_names():
    problem = problems.get("objectives:Quadratic", dim=4, shift=0.5)
    assert problem.space.dim == 4
    with pytest.raises(ValueError, match="did you mean 'sphere'"):
        problems.get("sphear")
    with pytest.raises(ValueError, match="has no attribute"):
        problems.get("objectives:NoSuchThing")
    with pytest.raises(ValueError, match="has no option 'dimm'"):
        problems.get("sphere", dimm=3)


def test_entry_point_group_finds_third_party_problems(tmp_path, monkeypatch):
    dist = tmp_path / "thirdparty_problems-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-problems\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[bbopt.problems]\nquad = objectives:Quadratic\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "quad" in problems.available()
    assert problems.get("quad", dim=2).space.dim == 2
    assert sys.modules["objectives"]


@pytest.mark.parametrize("dim", [1, 5, 40])
def test_styblinski_tang_optimum_is_the_literature_value(dim):
    """Surjanovic & Bingham: f(x*) = −39.16599·d at x*ᵢ = −2.903534 (five significant digits)."""
    problem = problems.get("styblinski-tang", dim=dim)
    assert problem.optimum == pytest.approx(-39.16599 * dim, rel=1e-5)
    assert StyblinskiTang.x_star == pytest.approx(-2.903534, abs=1e-6)
    x_star = StyblinskiTang.x_star
    assert 4 * x_star**3 - 32 * x_star + 5 == pytest.approx(0, abs=1e-9)  # a stationary point
    grid = np.linspace(-5, 5, 200_001)[:, None]  # the 1-D minimum over the box is no lower
    assert problems.get("styblinski-tang", dim=1).evaluate(grid).min() >= problem.optimum / dim - 1e-9
