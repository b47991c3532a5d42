"""Exp3 and inverse-gap weighting on arm means: conformance on a stochastic bandit."""

import numpy as np
import pytest

from bbopt import make_optimizer
from bbopt.strategies.bandit.igw import igw_probabilities

from .regret import BanditConformance, regret_ratio
from .synthetic import StochasticBandit, run


class TestExp3(BanditConformance):
    name = "exp3"
    rounds = 12
    converge_budget = 400
    max_regret_ratio = 0.3

    def make_problem(self):
        return StochasticBandit()


class TestIGW(BanditConformance):
    name = "igw"
    rounds = 12
    converge_budget = 400
    max_regret_ratio = 0.15

    def make_problem(self):
        return StochasticBandit()


def test_igw_probabilities():
    p = igw_probabilities(np.array([3.0, 1.0, 2.0]), 10.0)
    assert p.sum() == pytest.approx(1.0) and p.argmax() == 1
    assert p[0] == pytest.approx(1 / (3 + 20)) and p[2] == pytest.approx(1 / (3 + 10))
    np.testing.assert_allclose(igw_probabilities(np.array([3.0, 1.0, 2.0]), 0.0), 1 / 3)


def test_igw_means_match_empirical_means():
    problem = StochasticBandit(seed=4)
    opt = make_optimizer("igw", problem.space, seed=4)
    arms, _ = run(opt, problem, 600)
    best = problem.means.argmin()
    assert opt.predict_costs()[best] == pytest.approx(1 + problem.means[best], rel=0.1)


def test_exp3_rejects_bad_eta():
    with pytest.raises(ValueError, match="eta"):
        make_optimizer("exp3", StochasticBandit().space, eta=-1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uniform_random_play_fails_the_regret_bound(seed):
    """The bandit conformance bound is a test: random play scores ≈ 1, far above every bound."""
    ratio = regret_ratio("random", StochasticBandit(), 400, seed, {"popsize": 1})
    assert ratio > 0.75, ratio


def _play_recording_predictions(opt, problem, rounds):
    """Play ``rounds`` rounds; returns arms, contexts, costs and the predicted cost (cost units) of
    each played arm at the time it was asked."""
    arms, contexts, costs, predicted = [], [], [], []
    for r in range(rounds):
        c = problem.context(r) if hasattr(problem, "context") else None
        batch = opt.ask(None, c)
        batch.round = r
        arm = int(batch.x[0])
        predicted.append(opt.predict_costs(0.0 if c is None else c)[arm])
        y = problem.evaluate(batch)
        opt.tell(batch, y)
        arms.append(arm), contexts.append(c), costs.append(float(y[0]))
    return np.array(arms), contexts, np.array(costs), np.array(predicted)


def test_igw_step_size_from_consistent_quantities():
    """η = 2t√(dt/(R − R_fit + 2α²t)) with R the online error of the predictions made at ask
    time and R_fit the residual of every arm's fit, both in the current scale (issue 11, defect 4:
    R used to mix scales, and R_fit was 0 whenever the fit stayed inside its box — always, for IGW)."""
    problem = StochasticBandit(seed=6)
    opt = make_optimizer("igw", problem.space, seed=6, eta=1.0)
    arms, _, costs, predicted = _play_recording_predictions(opt, problem, 150)
    excess, S, t, d = costs - 1.0, opt.scale, len(costs), problem.space.n_arms
    online = (((predicted - 1.0) - excess) / S) ** 2
    fit = sum((((excess[arms == i] - excess[arms == i].mean()) / S) ** 2).sum() for i in np.unique(arms))
    assert fit > 0.01 * online.sum()  # noisy costs: the best fit in hindsight has a real residual
    spread = excess.max() - excess.min()
    alpha = (np.pi + 2 / np.pi * np.log(3)) / (2 * S * 2) * spread
    expected = 2 * t * np.sqrt(d * t / (online.sum() - fit + 2 * alpha**2 * t))
    assert opt.eta == pytest.approx(expected, rel=1e-9)
    np.testing.assert_allclose(opt.predict_costs()[np.unique(arms)],
                               [costs[arms == i].mean() for i in np.unique(arms)], rtol=1e-9)
