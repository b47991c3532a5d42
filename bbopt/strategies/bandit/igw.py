"""Inverse-gap weighting with a least-squares oracle (SquareCB: Foster & Rakhlin, ICML 2020),
in the form "Learning to Relax" (Khodak et al., ICLR 2024) uses for ChebCB.

Each arm i has a linear model ŷ_i(c) = θ_i · φ(c) of its scaled excess cost
(y − offset)/S, φ = Chebyshev polynomials T_0..T_{m−1} of the context mapped to [−1, 1]
(m = ``n_features``; m = 1: arm means, no context). Arms are drawn with
p_i = 1/(d + η(ŷ_i − ŷ_min)) for i ≠ argmin, the rest of the mass to the argmin.

After each cost, with ``max_cost`` = the largest cost seen, ``lipschitz`` = (max − min
cost)/(b − a) (a crude Lipschitz constant of cost in the context) and
``normaliser`` N = 2 + 4(b − a)·lipschitz/max_cost·(1 + log m): the scale is
S = max_cost·N; θ is fitted by least squares inside the box |θ_0| ≤ 1/N,
|θ_j| ≤ 2(b − a)·lipschitz/(S j) (``coef_bound``; bounded least squares, BVLS on the
QR-reduced system, only when the plain fit leaves the box). Every arm is refitted when S
changes, else the played arm.

The exploration rate is SquareCB's η ≈ √(d t / Reg_sq) with the oracle's regret Reg_sq
estimated as R − R_fit + 2α²t: η = eta·2t·√(d t / (R − R_fit + 2α² t)) (``eta`` = 1: the
reference's schedule), where, all in the
current scale S,
- R = Σ_s ((ŷ_s − y_s)/S)² is the online squared error of the predictions made when each
  arm was asked (stored in cost units, so a later change of S rescales them consistently),
- R_fit = Σ_i (residual of arm i's current bounded fit): the best fit in hindsight over
  all rounds, each arm's residual kept whether or not its fit touched the box,
- α = (π + (2/π) log(2m + 1))/(2S(m + 1))·(b − a)·lipschitz, the Chebyshev approximation
  error of a Lipschitz cost (the misspecification term).

Intended differences from the reference (mkhodak/learning-to-relax, ``learners/ChebCB.m``):
there ``resnorm`` is the residual of the last arm whose fit hit the box (0 when the fit
was inside it, and overwritten arm by arm), and R compares predictions stored in the scale
in force at ask time with costs y/S (offset not removed) in the current scale. Both mix
quantities of different scales; here R and R_fit are the two sides of the same regret.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial.chebyshev import chebvander
from scipy.optimize import lsq_linear

from bbopt.options import positive
from bbopt.seeding import SeedLike
from bbopt.spaces import Space
from bbopt.strategies.bandit.base import BanditOptimizer

ETA_MAX = 1e12  # η when the error estimate is 0 (all costs equal so far): greedy, but finite
# Default multipliers of η, chosen on the S1 and sor-diffusion cost tables (T = 50…1000; checked on
# S2 by the S4 run, benchmarks/RESULTS.md): the reference schedule (1) explores too long for short
# streams — at T = 400, IGW 1.45×/1.39× the best fixed ω with 1, 1.20×/1.13× with 100.
ETA = 100.0


def igw_probabilities(yhat: np.ndarray, eta: float) -> np.ndarray:
    """Inverse-gap weights ``p: (d,)`` for predicted costs ``yhat: (d,)`` (η = 0: uniform)."""
    yhat = np.asarray(yhat, dtype=float)
    best = int(np.argmin(yhat))
    p = 1.0 / (yhat.size + eta * (yhat - yhat[best]))
    p[best] = 0.0
    p[best] = 1.0 - p.sum()
    return p


class IGW(BanditOptimizer):
    """Inverse-gap weighting on per-arm cost models; degree 0 (this class): arm means."""

    owner = "igw"

    def __init__(self, space: Space, seed: SeedLike = None, cost_offset: float = 1.0, eta: float = ETA):
        super().__init__(space, seed, cost_offset)
        self.eta_scale = positive(eta, "eta", self.owner)
        self._setup(0, (0.0, 1.0))

    def _setup(self, degree: int, bounds: tuple[float, float]) -> None:
        self.n_features = degree + 1
        self.context_low, self.context_width = bounds[0], bounds[1] - bounds[0]
        self.theta = np.zeros((self.n_arms, self.n_features))
        self.residuals = np.zeros(self.n_arms)  # squared residual of each arm's fit, current scale
        self.scale = 0.0
        self.eta = 0.0
        self.prior: str | None = None  # "young": a shared multiple of Young's predicted cost under each arm's model
        self.prior_weight = 0.0  # that multiple, in the scale S (fitted on all rounds)
        self._arms: list[int] = []
        self._contexts: list[float] = []
        self._costs: list[float] = []  # excess costs y − offset
        self._predicted: list[float] = []  # predicted excess cost of the played arm when asked

    def features(self, contexts: np.ndarray) -> np.ndarray:
        """Chebyshev features ``(n, m)`` of contexts ``(n,)`` (clipped to the context range)."""
        x = 2.0 * (np.asarray(contexts, dtype=float) - self.context_low) / self.context_width - 1.0
        return chebvander(np.clip(x, -1.0, 1.0), self.n_features - 1)

    def prior_costs(self, contexts: np.ndarray) -> np.ndarray:
        """Prior cost shape ``(n, d)`` of every arm at ``contexts`` ``(n,)`` (zeros without a prior)."""
        return np.zeros((np.asarray(contexts).size, self.n_arms))

    def _predict(self, context: float) -> np.ndarray:
        """Predicted excess costs ``(d,)`` in the scale S: prior term + Chebyshev correction."""
        c = np.array([0.0 if math.isnan(context) else context])
        return self.theta @ self.features(c)[0] + self.prior_weight * self.prior_costs(c)[0]

    def predict_costs(self, context: float = 0.0) -> np.ndarray:
        """Predicted costs ``(d,)`` of every arm at ``context``, in the units of the told costs."""
        return self.cost_offset + self.scale * self._predict(context)

    def _policy(self, context: float) -> tuple[np.ndarray, np.ndarray | None]:
        yhat = self._predict(context)
        return igw_probabilities(yhat, self.eta), self.scale * yhat  # predictions in cost units

    def _update(self, arm: int, excess: float, prob: float, context: float, extra: float) -> None:
        self._arms.append(arm)
        self._contexts.append(0.0 if math.isnan(context) else context)
        self._costs.append(excess)
        self._predicted.append(extra)
        costs = np.asarray(self._costs)
        max_cost = float(costs.max()) + self.cost_offset
        max_cost = max_cost if max_cost > 0 else 1.0
        lipschitz = float(costs.max() - costs.min()) / self.context_width
        normaliser = 2.0 + 4.0 * self.context_width * lipschitz / max_cost * (1.0 + math.log(self.n_features))
        refit_all = max_cost * normaliser != self.scale or self.prior is not None
        self.scale = max_cost * normaliser
        coef_bound = np.r_[1.0 / normaliser,
                           2.0 * self.context_width * lipschitz / self.scale / np.arange(1, self.n_features)]
        targets = costs / self.scale
        if self.prior is not None:  # one multiple of the prior for all arms; the arms' models fit what is left
            played = self.prior_costs(np.asarray(self._contexts))[np.arange(costs.size), self._arms]
            self.prior_weight = float(targets @ played / (played @ played)) if (played > 0).any() else 0.0
            targets = targets - self.prior_weight * played
        self._refit(range(self.n_arms) if refit_all else [arm], targets, coef_bound)
        t = len(costs)
        alpha = ((math.pi + 2.0 / math.pi * math.log(2 * self.n_features + 1)) / (2 * self.scale * (self.n_features + 1))
                 * self.context_width * lipschitz)
        online = float((((np.asarray(self._predicted) - costs) / self.scale) ** 2).sum())
        denom = max(online - float(self.residuals.sum()), 0.0) + 2.0 * alpha**2 * t
        self.eta = min(self.eta_scale * 2.0 * t * math.sqrt(self.n_arms * t / denom), ETA_MAX) if denom > 0 else ETA_MAX

    def _refit(self, arms: range | list[int], targets: np.ndarray, coef_bound: np.ndarray) -> None:
        """Refit θ of ``arms`` on their rounds (``targets``: scaled excess costs of all rounds) and
        store each refitted arm's squared residual."""
        played = np.asarray(self._arms)
        feats = self.features(np.asarray(self._contexts))
        free = coef_bound > 0  # a zero bound (no cost spread yet) pins its coefficient to 0
        for i in arms:
            idx = played == i
            if not idx.any():
                continue
            F, y = feats[idx][:, free], targets[idx]
            theta = np.linalg.lstsq(F, y, rcond=None)[0]
            if (np.abs(theta) > coef_bound[free]).any():  # bounded fit on the QR-reduced (≤ m × m) system
                Q, R = np.linalg.qr(F)
                theta = lsq_linear(R, Q.T @ y, bounds=(-coef_bound[free], coef_bound[free]), method="bvls").x
            self.theta[i] = 0.0
            self.theta[i, free] = theta
            self.residuals[i] = float(((F @ theta - y) ** 2).sum())

    def _learner_state(self) -> dict:
        return {
            "n_features": self.n_features, "context_low": self.context_low, "context_width": self.context_width,
            "theta": self.theta.copy(), "residuals": self.residuals.copy(), "scale": self.scale, "eta": self.eta,
            "prior_weight": self.prior_weight,
            "arms": np.asarray(self._arms, dtype=np.int64), "contexts": np.asarray(self._contexts, dtype=float),
            "costs": np.asarray(self._costs, dtype=float), "predicted": np.asarray(self._predicted, dtype=float),
        }

    def _load_learner_state(self, state: dict) -> None:
        self.n_features = int(state["n_features"])
        self.context_low, self.context_width = float(state["context_low"]), float(state["context_width"])
        self.theta = np.array(state["theta"], dtype=float)
        self.residuals = np.array(state["residuals"], dtype=float)
        self.scale, self.eta = float(state["scale"]), float(state["eta"])
        self.prior_weight = float(state["prior_weight"])
        self._arms = np.asarray(state["arms"], dtype=np.int64).tolist()
        self._contexts = np.asarray(state["contexts"], dtype=float).tolist()
        self._costs = np.asarray(state["costs"], dtype=float).tolist()
        self._predicted = np.asarray(state["predicted"], dtype=float).tolist()
