"""Random tree decompositions of the variables (RDUCB, Ziomek & Bou-Ammar, ICML 2023).

Every RDUCB iteration draws a fresh **random forest** over the ``dim`` variables,
independent of the data: uniformly random pairs (i, j) are added as edges unless i = j
or i and j are already connected (a union–find keeps the components), until
``n_edges`` edges exist. The additive model then has one component per **clique** of the
forest: each edge (size 2) and each isolated variable (size 1). Every variable lies in
at least one clique, so the model sees all of them. Edges of k > 2 variables (a random
hyperforest, drawn the same way) give cliques of k variables whose junction tree the
message passing solves exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def default_n_edges(dim: int, fraction: float = 0.2, clique_size: int = 2) -> int:
    """The paper's edge count max(1, ⌊fraction·dim⌋), capped at a spanning tree
    (⌊(dim − 1)/(clique_size − 1)⌋ edges of ``clique_size`` variables)."""
    return min(max(1, int(np.floor(fraction * dim))), (dim - 1) // (clique_size - 1))


class _UnionFind:
    """Disjoint sets with path halving and union by size."""

    def __init__(self, n: int):
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> bool:
        """Join the sets of i and j; False when they already were one set."""
        ri, rj = self.find(i), self.find(j)
        if ri == rj:
            return False
        if self.size[ri] < self.size[rj]:
            ri, rj = rj, ri
        self.parent[rj] = ri
        self.size[ri] += self.size[rj]
        return True


def random_forest(dim: int, n_edges: int, rng: np.random.Generator, clique_size: int = 2) -> np.ndarray:
    """Edges ``(n_edges, clique_size)`` (sorted rows) of a uniformly grown random forest on ``dim`` nodes.

    Each edge joins ``clique_size`` variables drawn uniformly, rejected when two of them are
    already connected: with 2 this is RDUCB's random forest (acyclic), with k > 2 a random
    hyperforest (Berge-acyclic: two edges share at most one variable and no chain of edges
    returns to its start), so the cliques always form a junction tree. Each edge merges
    k − 1 components, so ``n_edges·(clique_size − 1)`` may be at most ``dim − 1``.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"random_forest: dim must be a positive integer, got {dim!r}")
    if isinstance(clique_size, bool) or not isinstance(clique_size, (int, np.integer)) or clique_size < 2:
        raise ValueError(f"random_forest: clique_size must be an integer ≥ 2, got {clique_size!r}")
    most = (dim - 1) // (clique_size - 1)
    if isinstance(n_edges, bool) or not isinstance(n_edges, (int, np.integer)) or not 0 <= n_edges <= most:
        raise ValueError(f"random_forest: n_edges must be an integer in [0, {most}] for dim {dim} and "
                         f"clique_size {clique_size}, got {n_edges!r}")
    sets = _UnionFind(int(dim))
    edges: list[tuple[int, ...]] = []
    while len(edges) < n_edges:
        nodes = [int(v) for v in rng.integers(0, dim, size=clique_size)]
        roots = {sets.find(v) for v in nodes}
        if len(roots) < clique_size:  # a repeated node, or two already connected
            continue
        for v in nodes[1:]:
            sets.union(nodes[0], v)
        edges.append(tuple(sorted(nodes)))
    return np.array(edges, dtype=np.int64).reshape(-1, clique_size)


@dataclass(frozen=True)
class Decomposition:
    """An additive structure over ``dim`` variables: its ``cliques`` (tuples of variable indices).

    Every variable lies in at least one clique. Built from edges (each edge a clique of two
    or more variables; the variables in no edge become cliques of one), or as one clique of
    every variable (a plain GP).
    """

    dim: int
    cliques: tuple[tuple[int, ...], ...]

    @classmethod
    def from_edges(cls, dim: int, edges: np.ndarray) -> Decomposition:
        edges = np.asarray(edges, dtype=np.int64)
        edges = edges.reshape(len(edges), -1) if edges.size else np.zeros((0, 2), dtype=np.int64)
        covered = np.zeros(dim, dtype=bool)
        covered[edges.reshape(-1)] = True
        singles = tuple((int(i),) for i in np.flatnonzero(~covered))
        return cls(int(dim), tuple(tuple(int(v) for v in e) for e in edges) + singles)

    @classmethod
    def full(cls, dim: int) -> Decomposition:
        """One clique holding every variable (a plain, non-additive GP)."""
        return cls(int(dim), (tuple(range(dim)),))

    @classmethod
    def random(cls, dim: int, n_edges: int, rng: np.random.Generator, clique_size: int = 2) -> Decomposition:
        return cls.from_edges(dim, random_forest(dim, n_edges, rng, clique_size))
