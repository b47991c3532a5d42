"""Synthetic stochastic bandits with iteration-like costs (≥ 1), for the learners' tests.

Cost of arm i in round t is a pure function of (seed, t, position in the batch), so runs are
reproducible and resumable: ``1 + mean_i · exp(σ z − σ²/2)`` (mean excess ``mean_i``).
"""

from __future__ import annotations

import numpy as np

from bbopt.problem import Problem
from bbopt.seeding import as_seed_sequence, child_seed
from bbopt.spaces import Choice


def _noise(seq, round_, k, sigma):
    z = np.random.default_rng(child_seed(seq, round_, k)).standard_normal()
    return float(np.exp(sigma * z - sigma**2 / 2))


class StochasticBandit(Problem):
    """Arms ``Choice.linspace(0, 1, d)``; mean cost 1 + ``means[i]``."""

    def __init__(self, means=(40.0, 25.0, 10.0, 30.0, 60.0, 12.0, 80.0, 50.0), sigma=0.3, seed=0):
        self.means = np.asarray(means, dtype=float)
        self.space = Choice.linspace(0.0, 1.0, self.means.size)
        self.sigma, self.seq = sigma, as_seed_sequence(seed)
        self.optimum = 1.0 + float(self.means.min())

    def evaluate(self, batch):
        if batch.round is None:
            raise ValueError("StochasticBandit needs batch.round")
        return np.array([1.0 + self.means[a] * _noise(self.seq, batch.round, k, self.sigma)
                         for k, a in enumerate(np.asarray(batch.x))])

    def regret(self, arms, contexts=None):
        """Pseudo-regret per round ``(T,)`` of the played ``arms`` against the best arm."""
        return self.means[np.asarray(arms)] - self.means.min()

    def uniform_regret(self, contexts=None):
        """Expected pseudo-regret per round of uniform random play."""
        return float((self.means - self.means.min()).mean())


class ContextualBandit(Problem):
    """Context c_t ~ U[0, 1]; arm values v_i on [0, 1]; mean excess cost
    ``5 + 200 (v_i − 0.2 − 0.6 c)²``: a quadratic in c, so a degree-5 Chebyshev model is exact."""

    context_range = (0.0, 1.0)

    def __init__(self, n_arms=12, sigma=0.1, seed=0):
        self.space = Choice.linspace(0.0, 1.0, n_arms)
        self.values = np.asarray(self.space.values)
        self.sigma, self.seq = sigma, as_seed_sequence(seed)
        self.optimum = 1.0 + 5.0

    def mean_excess(self, c):
        """``(d,)`` expected excess cost of every arm at context ``c``."""
        return 5.0 + 200.0 * (self.values - 0.2 - 0.6 * c) ** 2

    def regret(self, arms, contexts):
        """Pseudo-regret per round ``(T,)`` against the best arm of each round's context."""
        means = np.array([self.mean_excess(c) for c in contexts])
        return means[np.arange(len(means)), np.asarray(arms)] - means.min(axis=1)

    def uniform_regret(self, contexts):
        """Expected pseudo-regret per round of uniform random play on these contexts."""
        means = np.array([self.mean_excess(c) for c in contexts])
        return float((means - means.min(axis=1, keepdims=True)).mean())

    def context(self, round_):
        return float(np.random.default_rng(child_seed(self.seq, round_, 10**6)).random())

    def evaluate(self, batch):
        if batch.round is None or batch.context is None:
            raise ValueError("ContextualBandit needs batch.round and batch.context")
        mean = self.mean_excess(batch.context)
        return np.array([1.0 + mean[a] * _noise(self.seq, batch.round, k, self.sigma)
                         for k, a in enumerate(np.asarray(batch.x))])


def run(optimizer, problem, rounds):
    """Play ``rounds`` rounds; returns played arms ``(T,)`` and contexts ``(T,)``."""
    arms, contexts = [], []
    for r in range(rounds):
        c = problem.context(r) if hasattr(problem, "context") else None
        batch = optimizer.ask(None, c)
        batch.round = r
        optimizer.tell(batch, problem.evaluate(batch))
        arms.append(int(batch.x[0]))
        contexts.append(c)
    return np.array(arms), np.array(contexts, dtype=float)
