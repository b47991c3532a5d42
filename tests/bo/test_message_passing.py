"""Min-sum message passing equals brute force; zooming finds grid optima."""

import itertools

import numpy as np
import pytest

from bbopt.strategies.bo.decomposition import random_forest
from bbopt.strategies.bo.message_passing import min_sum_forest, zoom_minimize


def brute_force(unary, edges, pairwise):
    best, arg = np.inf, None
    for states in itertools.product(*[range(len(u)) for u in unary]):
        value = sum(u[s] for u, s in zip(unary, states))
        value += sum(t[states[i], states[j]] for (i, j), t in zip(edges.tolist(), pairwise))
        if value < best:
            best, arg = value, states
    return np.array(arg), best


@pytest.mark.parametrize("seed", range(12))
def test_min_sum_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    dim = int(rng.integers(1, 7))
    edges = random_forest(dim, int(rng.integers(0, dim)), rng)
    sizes = rng.integers(1, 5, size=dim)
    unary = [rng.normal(size=c) for c in sizes]
    pairwise = [rng.normal(size=(sizes[i], sizes[j])) for i, j in edges]
    state, value = min_sum_forest(unary, edges, pairwise)
    ref_state, ref_value = brute_force(unary, edges, pairwise)
    assert value == pytest.approx(ref_value, abs=1e-12)
    assert np.array_equal(state, ref_state)


def test_edge_orientation_and_cycles():
    unary = [np.zeros(2), np.zeros(3)]
    table = np.array([[5.0, 1.0, 7.0], [3.0, 9.0, 0.5]])  # (c_0, c_1)
    state, value = min_sum_forest(unary, np.array([[0, 1]]), [table])
    assert state.tolist() == [1, 2] and value == 0.5
    state, value = min_sum_forest(unary[::-1], np.array([[1, 0]]), [table])  # stored as (c_1, c_0)
    assert state.tolist() == [2, 1] and value == 0.5
    with pytest.raises(ValueError, match="forest"):
        min_sum_forest([np.zeros(2)] * 3, np.array([[0, 1], [1, 2], [0, 2]]), [np.zeros((2, 2))] * 3)


def chain_potentials(a, edges, weight=1.0):
    """f(x) = Σ (x_i − a_i)² + weight Σ_edges (x_i − x_j)² as potentials on candidate values."""
    def potentials(states):
        unary = [(s - a[i]) ** 2 for i, s in enumerate(states)]
        pairwise = [weight * (states[i][:, None] - states[j][None, :]) ** 2 for i, j in edges]
        return unary, pairwise
    return potentials


def test_zoom_is_exact_on_a_small_grid():
    rng = np.random.default_rng(0)
    edges = np.array([[0, 1], [1, 2]])
    a = rng.random(3)
    pot = chain_potentials(a, edges)
    x, value = zoom_minimize(pot, 3, edges, rng, grid_size=9, n_points=16)
    grid = [np.linspace(0, 1, 9)] * 3
    ref_state, ref_value = brute_force(*pot(grid)[:1], edges, pot(grid)[1])
    assert value == pytest.approx(ref_value)
    np.testing.assert_allclose(x, ref_state / 8)


def test_zoom_refines_to_the_grid_optimum_of_a_convex_function():
    rng = np.random.default_rng(1)
    dim = 8
    edges = random_forest(dim, 4, rng)
    a = rng.random(dim)
    x, value = zoom_minimize(chain_potentials(a, edges, 0.3), dim, edges, rng, grid_size=150, n_points=6)
    # the continuous minimiser solves (I + 0.3·Laplacian) x = a
    lap = np.zeros((dim, dim))
    for i, j in edges:
        lap[[i, j], [i, j]] += 1
        lap[i, j] -= 1
        lap[j, i] -= 1
    x_star = np.linalg.solve(np.eye(dim) + 0.3 * lap, a)
    assert np.abs(x - x_star).max() <= 1.5 / 149
    assert np.allclose(np.rint(x * 149), x * 149)  # on the grid


def test_anchor_is_kept_when_it_is_best():
    rng = np.random.default_rng(2)
    a = np.array([0.123456, 0.9])
    x, _ = zoom_minimize(chain_potentials(a, np.zeros((0, 2), int)), 2, np.zeros((0, 2), int), rng,
                         grid_size=150, n_points=4, anchor=np.round(a * 149) / 149)
    np.testing.assert_allclose(x, np.round(a * 149) / 149)


def test_zoom_rejects_windows_that_cannot_shrink():
    with pytest.raises(ValueError, match="n_points"):
        zoom_minimize(chain_potentials(np.zeros(1), []), 1, np.zeros((0, 2), int), np.random.default_rng(0),
                      n_points=3)
