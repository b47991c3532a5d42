"""The additive LCB: tables, value, analytic gradient, polish, β schedule."""

import numpy as np
import pytest
from scipy.optimize import approx_fprime

from bbopt.strategies.bo.acquisition import beta_schedule, clique_lcb, clique_potentials, lcb_and_grad, polish
from bbopt.strategies.bo.additive_gp import AdditiveGP, standardize
from bbopt.strategies.bo.decomposition import Decomposition
from bbopt.strategies.bo.kernels import Hyper
from bbopt.strategies.bo.message_passing import min_sum


@pytest.fixture()
def gp():
    rng = np.random.default_rng(0)
    X = rng.random((25, 5))
    y = standardize(np.sin(4 * X[:, 0]) + (X[:, 1] - X[:, 2]) ** 2 + X[:, 3] * X[:, 4])[0]
    hyper = Hyper(np.log(rng.uniform(0.2, 0.5, 5)), np.log(rng.uniform(0.1, 0.3, 5)), np.log(1e-3))
    return AdditiveGP(X, y, Decomposition.from_edges(5, np.array([[1, 2], [3, 4]])), hyper)


def test_beta_schedule():
    assert beta_schedule(1) == pytest.approx(0.5 * np.log(2))
    assert beta_schedule(100, scale=1.0) == pytest.approx(np.log(200))


def test_lcb_is_the_sum_of_clique_terms_and_the_gradient_is_exact(gp):
    x = np.random.default_rng(1).random(5)
    value, grad = lcb_and_grad(gp, x, 1.3)
    assert value == pytest.approx(sum(clique_lcb(gp, c, x[list(c)][None], 1.3)[0] for c in gp.cliques))
    np.testing.assert_allclose(grad, approx_fprime(x, lambda z: lcb_and_grad(gp, z, 1.3)[0], 1e-7),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("edges", [[[1, 2], [3, 4]], [[0, 1, 2], [2, 3, 4]]], ids=["pairs", "triples"])
def test_clique_tables_give_the_lcb_of_every_grid_point(gp, edges):
    """Tables over a forest of pairs and over two 3-variable cliques sharing a variable: the
    message-passing minimum is the LCB's minimum over all 4^5 grid points."""
    gp = AdditiveGP(gp.X, gp.y, Decomposition.from_edges(5, np.array(edges)), gp.hyper)
    states = [np.linspace(0, 1, 4) for _ in range(5)]
    choice, value = min_sum(gp.cliques, clique_potentials(gp, 0.7)(states), 5)
    x = np.array([states[i][c] for i, c in enumerate(choice)])
    assert value == pytest.approx(lcb_and_grad(gp, x, 0.7)[0])
    grid = np.stack(np.meshgrid(*states, indexing="ij"), -1).reshape(-1, 5)  # 4^5 points
    assert value == pytest.approx(min(lcb_and_grad(gp, p, 0.7)[0] for p in grid))


def test_polish_never_makes_the_acquisition_worse(gp):
    x0 = np.full(5, 0.5)
    x, value = polish(gp, x0, 0.7)
    assert value <= lcb_and_grad(gp, x0, 0.7)[0] and np.all((x >= 0) & (x <= 1))
    assert np.array_equal(polish(gp, x0, 0.7, max_iter=0)[0], x0)  # no polish: the start comes back
