"""Exp3 and inverse-gap weighting on arm means: conformance on a stochastic bandit."""

import numpy as np
import pytest

from bbopt import make_optimizer
from bbopt.strategies.bandit.igw import igw_probabilities
from bbopt.testing import OptimizerConformance

from .synthetic import StochasticBandit, run


class TestExp3(OptimizerConformance):
    name = "exp3"
    rounds = 12
    converge_budget = 400
    converge_target = 3.0

    def make_problem(self):
        return StochasticBandit()


class TestIGW(OptimizerConformance):
    name = "igw"
    rounds = 12
    converge_budget = 400
    converge_target = 3.0

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
