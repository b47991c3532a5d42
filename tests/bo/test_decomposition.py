"""Random forest decompositions: acyclic, the requested edge count, seeded, full coverage; hyperforests."""

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from bbopt.strategies.bo.decomposition import Decomposition, default_n_edges, random_forest


def n_components(dim, edges):
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(dim, dim))
    return connected_components(graph, directed=False)[0]


@pytest.mark.parametrize("dim,n_edges", [(2, 1), (5, 4), (20, 4), (100, 20), (50, 49)])
def test_forest_has_requested_edges_and_no_cycle(dim, n_edges):
    rng = np.random.default_rng(0)
    for _ in range(20):
        edges = random_forest(dim, n_edges, rng)
        assert edges.shape == (n_edges, 2)
        assert (edges[:, 0] < edges[:, 1]).all() and edges.min() >= 0 and edges.max() < dim
        assert len({tuple(e) for e in edges.tolist()}) == n_edges  # no repeated edge
        # a graph with E edges is a forest iff it has exactly dim − E components
        assert n_components(dim, edges) == dim - n_edges


def test_seeded_and_varied():
    a = random_forest(30, 6, np.random.default_rng(1))
    b = random_forest(30, 6, np.random.default_rng(1))
    c = random_forest(30, 6, np.random.default_rng(2))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_pairs_are_spread_over_all_variables():
    """Every pair can occur: over many draws each variable gets an edge (uniform sampler)."""
    rng = np.random.default_rng(3)
    seen = np.zeros(10, dtype=int)
    for _ in range(200):
        np.add.at(seen, random_forest(10, 2, rng).reshape(-1), 1)
    assert seen.min() > 40  # expected 80 each


def test_default_edge_count():
    assert default_n_edges(20) == 4
    assert default_n_edges(100) == 20
    assert default_n_edges(3) == 1  # max(1, ⌊0.6⌋)
    assert default_n_edges(1) == 0  # a single variable has no pair
    assert default_n_edges(10, fraction=0.5) == 5
    assert default_n_edges(100, clique_size=3) == 20 and default_n_edges(9, 0.9, clique_size=3) == 4


def test_cliques_cover_every_variable_once_per_role():
    dec = Decomposition.random(12, 3, np.random.default_rng(4))
    pairs = [c for c in dec.cliques if len(c) == 2]
    singles = [c for c in dec.cliques if len(c) == 1]
    assert len(pairs) == 3
    in_pairs = {v for c in pairs for v in c}
    assert {c[0] for c in singles} == set(range(12)) - in_pairs
    assert Decomposition.full(4).cliques == ((0, 1, 2, 3),)


@pytest.mark.parametrize("dim,n_edges,k", [(0, 0, 2), (5, 5, 2), (5, -1, 2), (4.0, 1, 2), (5, 3, 3), (5, 1, 1)])
def test_bad_input_names_the_field(dim, n_edges, k):
    with pytest.raises(ValueError, match="dim|n_edges|clique_size"):
        random_forest(dim, n_edges, np.random.default_rng(0), k)


@pytest.mark.parametrize("dim,n_edges,k", [(3, 1, 3), (10, 3, 3), (25, 6, 4), (13, 6, 3)])
def test_hyperforest_edges_join_distinct_components(dim, n_edges, k):
    """Edges of k variables: each merges k components (so cliques share at most one variable
    and never close a cycle); the count and the component count follow."""
    rng = np.random.default_rng(dim)
    for _ in range(20):
        edges = random_forest(dim, n_edges, rng, clique_size=k)
        assert edges.shape == (n_edges, k) and (np.diff(edges, axis=1) > 0).all()
        star = np.column_stack([np.repeat(edges[:, 0], k - 1), edges[:, 1:].reshape(-1)])  # spanning pairs
        assert n_components(dim, star) == dim - n_edges * (k - 1)
        shared = [len(set(a) & set(b)) for i, a in enumerate(edges.tolist()) for b in edges.tolist()[i + 1:]]
        assert max(shared, default=0) <= 1
    dec = Decomposition.random(dim, n_edges, rng, clique_size=k)
    assert sorted({v for c in dec.cliques for v in c}) == list(range(dim))
