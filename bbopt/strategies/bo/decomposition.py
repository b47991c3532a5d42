"""Random tree decompositions of the variables (RDUCB, Ziomek & Bou-Ammar, ICML 2023).

Every RDUCB iteration draws a fresh **random forest** over the ``dim`` variables,
independent of the data: uniformly random pairs (i, j) are added as edges unless i = j
or i and j are already connected (a union–find keeps the components), until
``n_edges`` edges exist. The additive model then has one component per **clique** of the
forest: each edge (size 2) and each isolated variable (size 1). Every variable lies in
at least one clique, so the model sees all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def default_n_edges(dim: int, fraction: float = 0.2) -> int:
    """The paper's edge count max(1, ⌊fraction·dim⌋), capped at a spanning tree (dim − 1)."""
    return min(max(1, int(np.floor(fraction * dim))), dim - 1)


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


def random_forest(dim: int, n_edges: int, rng: np.random.Generator) -> np.ndarray:
    """Edges ``(n_edges, 2)`` (i < j per row) of a uniformly grown random forest on ``dim`` nodes.

    Pairs are drawn uniformly and rejected when they would close a cycle, so the result
    is acyclic; ``n_edges`` may be at most ``dim − 1`` (a spanning tree).
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"random_forest: dim must be a positive integer, got {dim!r}")
    if isinstance(n_edges, bool) or not isinstance(n_edges, (int, np.integer)) or not 0 <= n_edges <= dim - 1:
        raise ValueError(f"random_forest: n_edges must be an integer in [0, dim − 1 = {dim - 1}], got {n_edges!r}")
    sets = _UnionFind(int(dim))
    edges: list[tuple[int, int]] = []
    while len(edges) < n_edges:
        i, j = (int(v) for v in rng.integers(0, dim, size=2))
        if i != j and sets.union(i, j):
            edges.append((min(i, j), max(i, j)))
    return np.array(edges, dtype=np.int64).reshape(-1, 2)


@dataclass(frozen=True)
class Decomposition:
    """An additive structure: ``cliques`` (tuples of variable indices) and the forest ``edges``.

    ``edges: (E, 2)`` are the size-2 cliques; the size-1 cliques are the isolated variables.
    """

    dim: int
    edges: np.ndarray
    cliques: tuple[tuple[int, ...], ...]

    @classmethod
    def from_edges(cls, dim: int, edges: np.ndarray) -> Decomposition:
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        covered = np.zeros(dim, dtype=bool)
        covered[edges.reshape(-1)] = True
        singles = tuple((int(i),) for i in np.flatnonzero(~covered))
        pairs = tuple((int(i), int(j)) for i, j in edges)
        return cls(int(dim), edges, pairs + singles)

    @classmethod
    def full(cls, dim: int) -> Decomposition:
        """One clique holding every variable (a plain, non-additive GP)."""
        return cls(int(dim), np.zeros((0, 2), dtype=np.int64), (tuple(range(dim)),))

    @classmethod
    def random(cls, dim: int, n_edges: int, rng: np.random.Generator) -> Decomposition:
        return cls.from_edges(dim, random_forest(dim, n_edges, rng))
