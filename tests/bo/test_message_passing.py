"""Min-sum message passing on junction trees equals brute force; zooming finds grid optima."""

import itertools

import numpy as np
import pytest

from bbopt.strategies.bo.decomposition import Decomposition, random_forest
from bbopt.strategies.bo.message_passing import junction_tree, min_sum, zoom_minimize


def brute_force(cliques, tables, dim):
    sizes = {v: t.shape[a] for c, t in zip(cliques, tables) for a, v in enumerate(c)}
    best, arg = np.inf, None
    for states in itertools.product(*[range(sizes[v]) for v in range(dim)]):
        value = sum(t[tuple(states[v] for v in c)] for c, t in zip(cliques, tables))
        if value < best:
            best, arg = value, states
    return np.array(arg), best


def random_tables(cliques, dim, rng, max_states=4):
    sizes = rng.integers(1, max_states + 1, size=dim)
    return [rng.normal(size=[sizes[v] for v in c]) for c in cliques]


@pytest.mark.parametrize("seed", range(12))
def test_min_sum_equals_brute_force_on_random_forests(seed):
    """RDUCB's case: cliques are the edges of a random forest and the isolated variables."""
    rng = np.random.default_rng(seed)
    dim = int(rng.integers(1, 7))
    dec = Decomposition.random(dim, int(rng.integers(0, dim)), rng)
    tables = random_tables(dec.cliques, dim, rng)
    state, value = min_sum(dec.cliques, tables, dim)
    ref_state, ref_value = brute_force(dec.cliques, tables, dim)
    assert value == pytest.approx(ref_value, abs=1e-12)
    assert np.array_equal(state, ref_state)


@pytest.mark.parametrize("seed", range(12))
def test_min_sum_equals_brute_force_on_cliques_of_three(seed):
    """Random hyperforests of 3-variable cliques (the junction tree beyond pairs), 3 states each."""
    rng = np.random.default_rng(100 + seed)
    dim = int(rng.integers(3, 8))
    dec = Decomposition.random(dim, int(rng.integers(1, (dim - 1) // 2 + 1)), rng, clique_size=3)
    assert max(len(c) for c in dec.cliques) == 3
    tables = random_tables(dec.cliques, dim, rng, max_states=3)
    state, value = min_sum(dec.cliques, tables, dim)
    ref_state, ref_value = brute_force(dec.cliques, tables, dim)
    assert value == pytest.approx(ref_value, abs=1e-12)
    assert np.array_equal(state, ref_state)


@pytest.mark.parametrize("cliques", [
    ((0, 1, 2), (1, 2, 3), (3, 4)),          # separators of two variables
    ((2, 0, 1), (0, 3), (0, 4), (4, 5, 6)),  # a variable in three cliques, unsorted clique order
    ((0, 1), (1, 2), (2, 3), (1, 4), (5,)),  # the pairwise chain plus an isolated variable
    ((0, 1, 2, 3), (3, 4, 5), (5, 6)),       # a clique of four
])
def test_min_sum_equals_brute_force_on_chordal_structures(cliques):
    dim = max(max(c) for c in cliques) + 1
    rng = np.random.default_rng(len(cliques))
    for _ in range(5):
        tables = random_tables(cliques, dim, rng, max_states=3)
        state, value = min_sum(cliques, tables, dim)
        ref_state, ref_value = brute_force(cliques, tables, dim)
        assert value == pytest.approx(ref_value, abs=1e-12)
        assert sum(t[tuple(state[v] for v in c)] for c, t in zip(cliques, tables)) == pytest.approx(value)


def test_orientation_of_a_table_follows_its_clique():
    table = np.array([[5.0, 1.0, 7.0], [3.0, 9.0, 0.5]])  # axes (x0, x1)
    state, value = min_sum([(0, 1)], [table], 2)
    assert state.tolist() == [1, 2] and value == 0.5
    state, value = min_sum([(1, 0)], [table], 2)  # the same table read as (x1, x0)
    assert state.tolist() == [2, 1] and value == 0.5


def test_cycles_and_bad_tables_are_refused():
    with pytest.raises(ValueError, match="no junction tree"):
        junction_tree([(0, 1), (1, 2), (0, 2)], 3)
    with pytest.raises(ValueError, match="no junction tree"):  # a 4-cycle of pairs is not chordal
        junction_tree([(0, 1), (1, 2), (2, 3), (0, 3)], 4)
    with pytest.raises(ValueError, match="states"):
        min_sum([(0, 1), (1,)], [np.zeros((2, 3)), np.zeros(2)], 2)
    with pytest.raises(ValueError, match="in no clique"):
        min_sum([(0,)], [np.zeros(2)], 2)


def test_random_forests_of_any_clique_size_are_junction_trees():
    rng = np.random.default_rng(7)
    for k in (2, 3, 4):
        for _ in range(20):
            dec = Decomposition.random(30, int(rng.integers(0, 29 // (k - 1) + 1)), rng, clique_size=k)
            order, parent = junction_tree(dec.cliques, 30)
            assert sorted(order) == list(range(len(dec.cliques)))


def chain_potentials(a, edges, weight=1.0):
    """f(x) = Σ (x_i − a_i)² + weight Σ_edges (x_i − x_j)² as clique tables on candidate values:
    the cliques are the edges (holding the pair term) and one clique per variable (its own term)."""
    cliques = [tuple(e) for e in np.asarray(edges).tolist()] + [(i,) for i in range(len(a))]

    def potentials(states):
        pairs = [weight * (states[i][:, None] - states[j][None, :]) ** 2 for i, j in cliques[:len(edges)]]
        return pairs + [(s - a[i]) ** 2 for i, s in enumerate(states)]

    return cliques, potentials


def test_zoom_is_exact_on_a_small_grid():
    rng = np.random.default_rng(0)
    a = rng.random(3)
    cliques, pot = chain_potentials(a, [[0, 1], [1, 2]])
    x, value = zoom_minimize(pot, 3, cliques, rng, grid_size=9, n_points=16)
    ref_state, ref_value = brute_force(cliques, pot([np.linspace(0, 1, 9)] * 3), 3)
    assert value == pytest.approx(ref_value)
    np.testing.assert_allclose(x, ref_state / 8)


def test_zoom_refines_to_the_grid_optimum_of_a_convex_function():
    rng = np.random.default_rng(1)
    dim = 8
    edges = random_forest(dim, 4, rng)
    a = rng.random(dim)
    cliques, pot = chain_potentials(a, edges, 0.3)
    x, value = zoom_minimize(pot, dim, cliques, rng, grid_size=150, n_points=6)
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
    cliques, pot = chain_potentials(a, [])
    x, _ = zoom_minimize(pot, 2, cliques, rng, grid_size=150, n_points=4, anchor=np.round(a * 149) / 149)
    np.testing.assert_allclose(x, np.round(a * 149) / 149)


def test_zoom_rejects_windows_that_cannot_shrink():
    with pytest.raises(ValueError, match="n_points"):
        zoom_minimize(chain_potentials(np.zeros(1), [])[1], 1, [(0,)], np.random.default_rng(0), n_points=3)
