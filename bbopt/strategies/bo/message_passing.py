"""Exact min-sum message passing over a forest, and coarse-to-fine grid "zooming".

An objective ``Σ_i u_i(x_i) + Σ_(i,j)∈E ψ_ij(x_i, x_j)`` over discrete states, with E a
forest, is minimised exactly by dynamic programming: root every tree, send
``m_c→p(x_p) = min_{x_c} ψ(x_p, x_c) + u_c(x_c) + Σ_children m(x_c)`` from the leaves up,
take the root's arg-min and trace the stored arg-mins back down (Pearl 1988; as RDUCB
does on its random trees). Cost O(Σ_edges c_i c_j).

Continuous variables are put on a per-dimension grid (RDUCB: 150 points) and zoomed
coarse-to-fine: each round offers ``n_points`` states per variable spread over its
window (plus the previous winner), solves the discrete problem exactly, and shrinks every
window to one spacing around its winner, until the windows are enumerated in full.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import numpy as np


def _tree_order(dim: int, edges: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Nodes in breadth-first order per tree; each node's parent (−1 at roots) and parent edge."""
    adjacency: list[list[int]] = [[] for _ in range(dim)]
    for e, (i, j) in enumerate(edges.tolist()):
        adjacency[i].append(e)
        adjacency[j].append(e)
    parent = np.full(dim, -1, dtype=np.int64)
    parent_edge = np.full(dim, -1, dtype=np.int64)
    seen = np.zeros(dim, dtype=bool)
    order: list[int] = []
    for root in range(dim):
        if seen[root]:
            continue
        seen[root] = True
        queue = deque([root])
        while queue:
            node = queue.popleft()
            order.append(node)
            for e in adjacency[node]:
                other = int(edges[e, 0] + edges[e, 1] - node)
                if not seen[other]:
                    seen[other] = True
                    parent[other], parent_edge[other] = node, e
                    queue.append(other)
    if len(order) != dim or len(edges) != dim - np.sum(parent < 0):
        raise ValueError("min_sum_forest: edges must form a forest (no cycle, no repeated edge)")
    return order, parent, parent_edge


def min_sum_forest(unary: Sequence[np.ndarray], edges: np.ndarray,
                   pairwise: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
    """Exact arg-min of Σ_i unary[i][x_i] + Σ_e pairwise[e][x_i, x_j] over a forest.

    ``unary[i]: (c_i,)``; ``edges: (E, 2)`` rows (i, j); ``pairwise[e]: (c_i, c_j)``.
    Returns the states ``(d,)`` (ints) and the minimum value.
    """
    dim = len(unary)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if len(pairwise) != len(edges):
        raise ValueError(f"min_sum_forest: {len(edges)} edges but {len(pairwise)} pairwise tables")
    order, parent, parent_edge = _tree_order(dim, edges)
    belief = [np.asarray(u, dtype=float).copy() for u in unary]
    backtrack: dict[int, np.ndarray] = {}
    for node in reversed(order):  # leaves first: fold each node into its parent
        p = int(parent[node])
        if p < 0:
            continue
        table = pairwise[parent_edge[node]]
        table = table if edges[parent_edge[node], 0] == p else table.T  # (c_p, c_node)
        total = table + belief[node][None, :]
        backtrack[node] = np.argmin(total, axis=1)
        belief[p] = belief[p] + total[np.arange(len(total)), backtrack[node]]
    state = np.zeros(dim, dtype=np.int64)
    value = 0.0
    for node in order:  # roots come before their descendants
        p = int(parent[node])
        if p < 0:
            state[node] = int(np.argmin(belief[node]))
            value += float(belief[node][state[node]])
        else:
            state[node] = backtrack[node][state[p]]
    return state, value


Potentials = Callable[[list[np.ndarray]], tuple[list[np.ndarray], list[np.ndarray]]]


def zoom_minimize(potentials: Potentials, dim: int, edges: np.ndarray, rng: np.random.Generator,
                  grid_size: int = 150, n_points: int = 16, anchor: np.ndarray | None = None,
                  extra: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Minimise a forest-structured function over the grid ``linspace(0, 1, grid_size)^dim``.

    ``potentials(states)`` gets each variable's candidate values ``(c_i,)`` and returns the
    unary ``(c_i,)`` and pairwise ``(c_i, c_j)`` tables. ``anchor: (d,)`` (e.g. the
    incumbent, in [0, 1]) is offered in the first round and ``extra: (d, m)`` (e.g. values
    near the incumbent) too. Returns the grid point ``(d,)`` and its value.
    """
    if n_points < 4 or grid_size < 2:
        raise ValueError(f"zoom_minimize: needs n_points ≥ 4 (so windows shrink) and grid_size ≥ 2, "
                         f"got n_points={n_points}, grid_size={grid_size}")
    last = grid_size - 1
    lo, hi = np.zeros(dim), np.full(dim, float(last))
    best = None if anchor is None else np.rint(np.clip(anchor, 0.0, 1.0) * last)
    first = None if extra is None else np.rint(np.clip(extra, 0.0, 1.0) * last)
    while True:
        spacing = (hi - lo) / max(1, n_points - 1)
        states = []
        for i in range(dim):
            if spacing[i] <= 1.0:
                idx = np.arange(np.ceil(lo[i]), np.floor(hi[i]) + 1)
            else:
                idx = np.rint(lo[i] + spacing[i] * (np.arange(n_points - 1) + rng.random()))
            if first is not None:
                idx = np.append(idx, first[i])
            states.append(np.unique(idx if best is None else np.append(idx, best[i])))
        first = None
        unary, pairwise = potentials([s / last for s in states])
        choice, value = min_sum_forest(unary, edges, pairwise)
        best = np.array([states[i][choice[i]] for i in range(dim)])
        if np.all(spacing <= 1.0):
            return best / last, value
        lo, hi = np.maximum(best - spacing, 0.0), np.minimum(best + spacing, float(last))
