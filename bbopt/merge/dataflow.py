"""Data-flow-space merging: evolve the path of layers a hidden state takes through two models.

Sakana's DFS search (Akiba et al., arXiv 2403.13187, §3.2): weights stay frozen. The layers
of model A then model B form M = n_A + n_B slots; the block is repeated ``repeats`` times,
T = M·r candidate slots, and an indicator gene per slot selects it when > 0. The path is
A's first layer, the selected slots in order, A's last layer (the authors' rule, issue #8);
the hidden state entering layer j from layer i is scaled by 1 + W[i, j] (W: M×M genes; the
first hop is unscaled). A's embedding and head are used. The start point switches on A's
own layers in the first repetition, so x0 *is* model A.

A reroutable model exposes ``embed(inputs, **kw) -> (h, ctx)``, ``layers`` (a sequence
whose length is the layer count), ``run_layer(i, h, ctx) -> h`` and
``head(h, ctx, **kw) -> logits``; its own forward must equal embed → every layer → head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Sized
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch import nn

from bbopt.spaces import Box

Hop = tuple[int, int]  # (model: 0 = A, 1 = B; layer index within that model)


class Reroutable(Protocol):
    """The interface of a reroutable model (see the module docstring)."""

    @property
    def layers(self) -> Sized: ...

    @property
    def embed(self) -> Callable[..., tuple[torch.Tensor, Any]]: ...

    def run_layer(self, i: int, h: torch.Tensor, ctx: Any, /) -> torch.Tensor: ...

    @property
    def head(self) -> Callable[..., torch.Tensor]: ...


class DataFlowGenome:
    """Genes: T = (n_a + n_b)·repeats indicators in [-1, 1], then W (M×M) in [-scale, scale]."""

    def __init__(self, n_a: int, n_b: int, repeats: int = 2, scale_bound: float = 0.5):
        for name, v, least in (("n_a", n_a, 2), ("n_b", n_b, 1), ("repeats", repeats, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < least:
                raise ValueError(f"dataflow genome: {name} must be an integer ≥ {least}, got {v!r}")
        if not scale_bound > 0:
            raise ValueError(f"dataflow genome: scale_bound must be > 0, got {scale_bound!r}")
        self.n_a, self.n_b, self.repeats = int(n_a), int(n_b), int(repeats)
        self.m = self.n_a + self.n_b
        self.t = self.m * self.repeats
        self.space = Box(np.r_[np.full(self.t, -1.0), np.full(self.m * self.m, -scale_bound)],
                         np.r_[np.full(self.t, 1.0), np.full(self.m * self.m, scale_bound)])
        self.x0 = np.r_[np.full(self.t, -0.5), np.zeros(self.m * self.m)]
        self.x0[1:self.n_a - 1] = 0.5  # A's inner layers in the first repetition

    @property
    def dim(self) -> int:
        return self.space.dim

    def hop(self, g: int) -> Hop:
        """Global layer index (0..M-1) -> (model, layer)."""
        return (0, g) if g < self.n_a else (1, g - self.n_a)

    def decode(self, x: np.ndarray) -> tuple[list[Hop], list[float]]:
        """The path (hops) and the scale applied to the hidden state entering each hop."""
        x = np.asarray(x, dtype=float).reshape(-1)
        if x.size != self.dim:
            raise ValueError(f"dataflow genome: expected {self.dim} genes, got {x.size}")
        chosen = [int(t) % self.m for t in np.flatnonzero(x[: self.t] > 0)]
        order = [0, *chosen, self.n_a - 1]
        w = x[self.t:].reshape(self.m, self.m)
        scales = [1.0] + [1.0 + float(w[i, j]) for i, j in zip(order[:-1], order[1:])]
        return [self.hop(g) for g in order], scales

    def describe(self, x: np.ndarray, model_names: Sequence[str] = ("A", "B")) -> dict:
        path, scales = self.decode(x)
        return {"method": "dataflow", "models": list(model_names), "repeats": self.repeats,
                "path": [[model_names[m], i] for m, i in path], "scales": [round(s, 6) for s in scales],
                "x": [float(v) for v in np.asarray(x, dtype=float).reshape(-1)]}


class PathModel(nn.Module):
    """Runs A's embedding, the hops of a path through A's and B's layers, A's head."""

    def __init__(self, a: nn.Module, b: nn.Module):
        super().__init__()
        for name, m in (("a", a), ("b", b)):
            missing = [f for f in ("embed", "layers", "run_layer", "head") if not hasattr(m, f)]
            if missing:
                raise TypeError(f"PathModel: model {name} is not reroutable (missing {missing})")
        # both have the reroutable members (checked just above)
        self.a, self.b = cast(Reroutable, a), cast(Reroutable, b)
        self.path: list[Hop] = [(0, i) for i in range(len(self.a.layers))]
        self.scales: list[float] = [1.0] * len(self.path)

    def set_path(self, path: list[Hop], scales: list[float]) -> PathModel:
        if len(path) != len(scales):
            raise ValueError(f"PathModel: {len(path)} hops but {len(scales)} scales")
        sizes = (len(self.a.layers), len(self.b.layers))
        for m, i in path:
            if m not in (0, 1) or not 0 <= i < sizes[m]:
                raise ValueError(f"PathModel: hop {(m, i)} is out of range for layer counts {sizes}")
        self.path, self.scales = list(path), [float(s) for s in scales]
        return self

    def forward(self, inputs: Any, **kw: Any) -> torch.Tensor:
        h, ctx = self.a.embed(inputs, **kw)
        for (m, i), s in zip(self.path, self.scales):
            h = (self.a if m == 0 else self.b).run_layer(i, h if s == 1.0 else h * s, ctx)
        return self.a.head(h, ctx, **kw)
