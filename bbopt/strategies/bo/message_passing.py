"""Exact min-sum message passing over a junction tree of cliques, and grid "zooming".

An objective ``Σ_g ψ_g(x_g)`` over discrete states, one table per clique g of variables,
is minimised exactly by dynamic programming when the cliques form a **junction tree**
(every variable's cliques are connected through cliques that contain it — the running
intersection property): connect the cliques by a maximum-weight spanning forest on their
overlaps, root every tree, send ``m_c→p(x_s) = min_{x_c \\ x_s} ψ_c + Σ_children m`` over
each separator s = c ∩ p from the leaves up, take each root's arg-min and trace the stored
arg-mins back down (Lauritzen & Spiegelhalter 1988; Koller & Friedman 2009, ch. 13, in
min-sum form). RDUCB's random forests are the special case of cliques of at most two
variables sharing one variable (Pearl 1988). Cost O(Σ_c Π_{i∈c} c_i).

Continuous variables are put on a per-dimension grid (RDUCB: 150 points) and zoomed
coarse-to-fine: each round offers ``n_points`` states per variable spread over its
window (plus the previous winner), solves the discrete problem exactly, and shrinks every
window to one spacing around its winner, until the windows are enumerated in full.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from bbopt.strategies.bo.decomposition import _UnionFind

Clique = tuple[int, ...]


def junction_tree(cliques: Sequence[Clique], dim: int) -> tuple[list[int], np.ndarray]:
    """Cliques in breadth-first order per tree and each clique's parent (−1 at roots).

    The forest is a maximum-weight spanning forest on |g ∩ h| (Kruskal); it is a junction
    tree iff every variable's cliques are connected in it, which is checked (a ValueError
    names a variable whose cliques are not: e.g. the pairs of a cycle).
    """
    if not all(len(c) == len(set(c)) and all(0 <= v < dim for v in c) for c in cliques):
        raise ValueError(f"junction_tree: cliques must hold distinct variables in [0, {dim - 1}]")
    holders: list[list[int]] = [[] for _ in range(dim)]
    for c, clique in enumerate(cliques):
        for v in clique:
            holders[v].append(c)
    overlap: dict[tuple[int, int], int] = {}
    for held in holders:
        for a in range(len(held)):
            for b in range(a + 1, len(held)):
                overlap[held[a], held[b]] = overlap.get((held[a], held[b]), 0) + 1
    pairs = sorted(overlap.items(), key=lambda kv: -kv[1])  # stable: ties keep clique order
    sets = _UnionFind(len(cliques))
    adjacency: list[list[int]] = [[] for _ in cliques]
    for (i, j), _ in pairs:
        if sets.union(i, j):
            adjacency[i].append(j)
            adjacency[j].append(i)
    parent = np.full(len(cliques), -1, dtype=np.int64)
    order: list[int] = []
    seen = np.zeros(len(cliques), dtype=bool)
    for root in range(len(cliques)):
        if seen[root]:
            continue
        seen[root] = True
        queue = deque([root])
        while queue:
            c = queue.popleft()
            order.append(c)
            for other in adjacency[c]:
                if not seen[other]:
                    seen[other] = True
                    parent[other] = c
                    queue.append(other)
    for v, held in enumerate(holders):  # running intersection: v's cliques connected by tree edges
        linked = sum(1 for c in held if parent[c] >= 0 and v in cliques[parent[c]])
        if len(held) - linked > 1:
            raise ValueError(f"junction_tree: the cliques of variable {v} are not connected through cliques "
                             "containing it (the decomposition has a cycle: no junction tree)")
    return order, parent


def _expand(table: np.ndarray, variables: Clique, target: Clique) -> np.ndarray:
    """``table`` over ``variables`` (a subset of ``target``) as an array broadcastable over ``target``."""
    perm = sorted(range(len(variables)), key=lambda a: target.index(variables[a]))
    shape = [1] * len(target)
    for a in perm:
        shape[target.index(variables[a])] = table.shape[a]
    return np.transpose(table, perm).reshape(shape)


def min_sum(cliques: Sequence[Clique], tables: Sequence[np.ndarray], dim: int,
            tree: tuple[list[int], np.ndarray] | None = None) -> tuple[np.ndarray, float]:
    """Exact arg-min of Σ_g tables[g][x_g] over the states of ``dim`` variables.

    ``tables[g]`` has one axis per variable of ``cliques[g]``, in that order; a variable has
    the same number of states in every table. The cliques must cover every variable and form
    a junction tree (``tree``: :func:`junction_tree` of the cliques, if already built).
    Returns the states ``(dim,)`` (ints) and the minimum value.
    """
    cliques = [tuple(int(v) for v in clique) for clique in cliques]
    if len(tables) != len(cliques):
        raise ValueError(f"min_sum: {len(cliques)} cliques but {len(tables)} tables")
    sizes = np.zeros(dim, dtype=np.int64)
    for clique, t in zip(cliques, tables):
        if np.ndim(t) != len(clique):
            raise ValueError(f"min_sum: the table of clique {clique} has {np.ndim(t)} axes, not {len(clique)}")
        for v, n in zip(clique, np.shape(t)):
            if sizes[v] not in (0, n):
                raise ValueError(f"min_sum: variable {v} has {sizes[v]} states in one table and {n} in another")
            sizes[v] = n
    if (sizes == 0).any():
        raise ValueError(f"min_sum: variables {np.flatnonzero(sizes == 0).tolist()} are in no clique")
    order, parent = junction_tree(cliques, dim) if tree is None else tree
    belief = [np.asarray(t, dtype=float).copy() for t in tables]
    backtrack: dict[int, tuple[Clique, Clique, np.ndarray]] = {}
    for c in reversed(order):  # leaves first: fold each clique into its parent over the separator
        p = int(parent[c])
        if p < 0:
            continue
        sep = tuple(v for v in cliques[c] if v in cliques[p])
        rest = tuple(v for v in cliques[c] if v not in sep)
        flat = np.transpose(belief[c], [cliques[c].index(v) for v in sep + rest])
        flat = flat.reshape(int(np.prod([sizes[v] for v in sep])), -1)
        arg = np.argmin(flat, axis=1)
        message = flat[np.arange(len(flat)), arg].reshape([int(sizes[v]) for v in sep])
        backtrack[c] = (sep, rest, arg)
        belief[p] = belief[p] + _expand(message, sep, cliques[p])
    state = np.full(dim, -1, dtype=np.int64)
    value = 0.0
    for c in order:  # parents come before their children
        if parent[c] < 0:
            flat_index = int(np.argmin(belief[c]))
            value += float(belief[c].reshape(-1)[flat_index])
            state[list(cliques[c])] = np.unravel_index(flat_index, belief[c].shape)
            continue
        sep, rest, arg = backtrack[c]
        row = np.ravel_multi_index(tuple(int(state[v]) for v in sep), [int(sizes[v]) for v in sep]) if sep else 0
        if rest:
            state[list(rest)] = np.unravel_index(int(arg[row]), [int(sizes[v]) for v in rest])
    return state, value


Potentials = Callable[[list[np.ndarray]], list[np.ndarray]]


def zoom_minimize(potentials: Potentials, dim: int, cliques: Sequence[Clique], rng: np.random.Generator,
                  grid_size: int = 150, n_points: int = 16, anchor: np.ndarray | None = None,
                  extra: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Minimise a clique-structured function over the grid ``linspace(0, 1, grid_size)^dim``.

    ``potentials(states)`` gets each variable's candidate values ``(c_i,)`` and returns one
    table per clique (an axis per clique variable, in order). ``anchor: (d,)`` (e.g. the
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
    tree = junction_tree(cliques, dim)
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
        choice, value = min_sum(cliques, potentials([s / last for s in states]), dim, tree)
        best = np.array([states[i][choice[i]] for i in range(dim)])
        if np.all(spacing <= 1.0):
            return best / last, value
        lo, hi = np.maximum(best - spacing, 0.0), np.minimum(best + spacing, float(last))
