"""Inverse-gap weighting with a least-squares oracle (SquareCB: Foster & Rakhlin, ICML 2020),
in the form "Learning to Relax" (Khodak et al., ICLR 2024) uses for ChebCB.

Each arm i has a linear model ŷ_i(c) = θ_i · φ(c) of its scaled excess cost
(y − offset)/S, φ = Chebyshev polynomials T_0..T_{m−1} of the context mapped to [−1, 1]
(m = 1: arm means, no context). Arms are drawn with p_i = 1/(d + η(ŷ_i − ŷ_min)) for
i ≠ argmin, the rest of the mass to the argmin. After each cost, with K = max cost,
L = (max − min cost)/(b − a) and N = 2 + 4(b − a)L/K·(1 + log m): S = K·N; θ is fitted by
least squares inside the box |θ_0| ≤ 1/N, |θ_j| ≤ 2(b − a)L/(S j) (bounded least squares,
BVLS on the QR-reduced system, only when the plain fit leaves the box); every arm is refitted when S changes, else the
played arm. η = 2t·√(d t / (R − R_fit + 2α² t)) with R the online squared prediction error,
R_fit the bounded fit's residual and α = (π + (2/π)log(2m + 1))/(2S(m + 1))·(b − a)L.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial.chebyshev import chebvander
from scipy.optimize import lsq_linear

from bbopt.seeding import SeedLike
from bbopt.spaces import Space
from bbopt.strategies.bandit.base import BanditOptimizer

ETA_MAX = 1e12  # η when the error estimate is 0 (all costs equal so far): greedy, but finite


def igw_probabilities(yhat: np.ndarray, eta: float) -> np.ndarray:
    """Inverse-gap weights ``p: (d,)`` for predicted costs ``yhat: (d,)`` (η = 0: uniform)."""
    yhat = np.asarray(yhat, dtype=float)
    best = int(np.argmin(yhat))
    p = 1.0 / (yhat.size + eta * (yhat - yhat[best]))
    p[best] = 0.0
    p[best] = 1.0 - p.sum()
    return p


class IGW(BanditOptimizer):
    """Inverse-gap weighting on per-arm cost models; ``degree`` 0 (this class): arm means."""

    def __init__(self, space: Space, seed: SeedLike = None, cost_offset: float = 1.0):
        super().__init__(space, seed, cost_offset)
        self._setup(0, (0.0, 1.0))

    def _setup(self, degree: int, bounds: tuple[float, float]) -> None:
        self.m = degree + 1
        self.lo, self.width = bounds[0], bounds[1] - bounds[0]
        self.theta = np.zeros((self.n_arms, self.m))
        self.scale = 0.0
        self.eta = 0.0
        self._arms: list[int] = []
        self._contexts: list[float] = []
        self._costs: list[float] = []  # excess costs y − offset
        self._predicted: list[float] = []  # θ_a · φ(c) of the played arm when it was asked

    def features(self, contexts: np.ndarray) -> np.ndarray:
        """Chebyshev features ``(n, m)`` of contexts ``(n,)`` (clipped to the context range)."""
        x = np.clip(2.0 * (np.asarray(contexts, dtype=float) - self.lo) / self.width - 1.0, -1.0, 1.0)
        return chebvander(x, self.m - 1)

    def predict_costs(self, context: float = 0.0) -> np.ndarray:
        """Predicted costs ``(d,)`` of every arm at ``context``, in the units of the told costs."""
        return self.cost_offset + self.scale * (self.theta @ self.features(np.array([context]))[0])

    def _policy(self, context: float) -> tuple[np.ndarray, np.ndarray | None]:
        c = 0.0 if math.isnan(context) else context
        yhat = self.theta @ self.features(np.array([c]))[0]
        return igw_probabilities(yhat, self.eta), yhat

    def _update(self, arm: int, excess: float, prob: float, context: float, extra: float) -> None:
        self._arms.append(arm)
        self._contexts.append(0.0 if math.isnan(context) else context)
        self._costs.append(excess)
        self._predicted.append(extra)
        costs = np.asarray(self._costs)
        top = float(costs.max()) + self.cost_offset  # K: the largest cost (not excess)
        top = top if top > 0 else 1.0
        lip = float(costs.max() - costs.min()) / self.width
        n_norm = 2.0 + 4.0 * self.width * lip / top * (1.0 + math.log(self.m))
        refit_all = top * n_norm != self.scale
        self.scale = top * n_norm
        ub = np.r_[1.0 / n_norm, 2.0 * self.width * lip / self.scale / np.arange(1, self.m)]
        resnorm = self._refit(range(self.n_arms) if refit_all else [arm], costs / self.scale, ub)
        t = len(costs)
        alpha = (math.pi + 2.0 / math.pi * math.log(2 * self.m + 1)) / (2 * self.scale * (self.m + 1)) * self.width * lip
        online = float(((np.asarray(self._predicted) - costs / self.scale) ** 2).sum())
        denom = max(online - resnorm, 0.0) + 2.0 * alpha**2 * t
        self.eta = min(2.0 * t * math.sqrt(self.n_arms * t / denom), ETA_MAX) if denom > 0 else ETA_MAX

    def _refit(self, arms: range | list[int], targets: np.ndarray, ub: np.ndarray) -> float:
        """Refit θ of ``arms`` on their rounds; returns the last bounded fit's squared residual."""
        played = np.asarray(self._arms)
        feats = self.features(np.asarray(self._contexts))
        free = ub > 0  # a zero bound (no cost spread yet) pins its coefficient to 0
        resnorm = 0.0
        for i in arms:
            idx = played == i
            if not idx.any():
                continue
            F, y = feats[idx][:, free], targets[idx]
            theta = np.linalg.lstsq(F, y, rcond=None)[0]
            if (np.abs(theta) > ub[free]).any():  # bounded fit on the QR-reduced (≤ m × m) system
                Q, R = np.linalg.qr(F)
                theta = lsq_linear(R, Q.T @ y, bounds=(-ub[free], ub[free]), method="bvls").x
                resnorm = float(((F @ theta - y) ** 2).sum())
            self.theta[i] = 0.0
            self.theta[i, free] = theta
        return resnorm

    def _learner_state(self) -> dict:
        return {
            "m": self.m, "lo": self.lo, "width": self.width, "theta": self.theta.copy(), "scale": self.scale,
            "eta": self.eta, "arms": np.asarray(self._arms, dtype=np.int64),
            "contexts": np.asarray(self._contexts, dtype=float), "costs": np.asarray(self._costs, dtype=float),
            "predicted": np.asarray(self._predicted, dtype=float),
        }

    def _load_learner_state(self, state: dict) -> None:
        self.m, self.lo, self.width = int(state["m"]), float(state["lo"]), float(state["width"])
        self.theta = np.array(state["theta"], dtype=float)
        self.scale, self.eta = float(state["scale"]), float(state["eta"])
        self._arms = np.asarray(state["arms"], dtype=np.int64).tolist()
        self._contexts = np.asarray(state["contexts"], dtype=float).tolist()
        self._costs = np.asarray(state["costs"], dtype=float).tolist()
        self._predicted = np.asarray(state["predicted"], dtype=float).tolist()
