"""½-Tsallis-INF: conformance, exact normalisation late in a run, sublinear regret."""

import numpy as np
import pytest

from bbopt import make_optimizer
from bbopt.strategies.bandit.tsallis_inf import tsallis_probabilities

from .regret import BanditConformance
from .synthetic import StochasticBandit, run


class TestTsallisINF(BanditConformance):
    name = "tsallis-inf"
    rounds = 12
    converge_budget = 400
    max_regret_ratio = 0.3

    def make_problem(self):
        return StochasticBandit()


def reference_newton(k_tilde, eta):
    """The MATLAB reference: 20 Newton steps from x = −1 (what the bisection replaces)."""
    x = -1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(20):
            p = 4 * (eta * (k_tilde - x)) ** -2.0
            x = x - (p.sum() - 1) / (eta * (p**1.5).sum())
    return 4 * (eta * (k_tilde - x)) ** -2.0


def test_normalisation_exact_at_late_rounds_where_newton_fails():
    problem = StochasticBandit(seed=1)
    opt = make_optimizer("tsallis-inf", problem.space, seed=1)
    run(opt, problem, 3000)
    p = opt.probabilities()
    assert abs(p.sum() - 1.0) < 1e-12 and (p > 0).all()
    k_tilde = opt.normalised_losses()
    assert abs(reference_newton(k_tilde, 2 / np.sqrt(opt.rounds_played[0] + 1)).sum() - 1.0) > 1e-3


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3, 1e6])
def test_probabilities_sum_to_one_over_scales(scale):
    rng = np.random.default_rng(0)
    for t in (1, 10, 10_000, 10**7):
        k = scale * rng.random(20) * np.sqrt(t)
        p = tsallis_probabilities(k, 2 / np.sqrt(t))
        assert abs(p.sum() - 1.0) < 1e-13
        assert p.argmax() == k.argmin()


@pytest.mark.parametrize("name", ["tsallis-inf", "exp3", "igw"])
def test_regret_sublinear_on_stochastic_bandit(name):
    problem = StochasticBandit(seed=3)
    opt = make_optimizer(name, problem.space, seed=3)
    arms, _ = run(opt, problem, 2000)
    regret = np.cumsum(problem.regret(arms))
    first, last = regret[499] / 500, (regret[-1] - regret[1499]) / 500
    assert last < 0.5 * first, (name, first, last)  # per-round regret falls: not linear
    assert regret[-1] < 0.25 * 2000 * problem.regret(np.arange(8)).mean()  # far below uniform play
    assert np.mean(arms[-500:] == problem.means.argmin()) > 0.5


def test_cost_below_offset_is_rejected_with_a_hint():
    problem = StochasticBandit()
    opt = make_optimizer("tsallis-inf", problem.space, seed=0)
    batch = opt.ask()
    with pytest.raises(ValueError, match="cost_offset"):
        opt.tell(batch, [0.003])


def test_nonfinite_before_any_cost_is_counted_not_learned():
    problem = StochasticBandit()
    opt = make_optimizer("tsallis-inf", problem.space, seed=0)
    opt.tell(opt.ask(), [np.nan])
    assert opt.n_nonfinite_skipped == 1 and opt.excess_sum[0] == 0
    opt.tell(opt.ask(), [11.0])
    batch = opt.ask()
    opt.tell(batch, [np.inf])  # now twice the worst excess: 20
    assert opt.excess_sum[0] == pytest.approx(10.0 + 20.0)
