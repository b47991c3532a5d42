"""ChebCB and Tsallis-INF-CB: conformance with a context stream, model recovery, and
beating the best fixed arm when the best arm depends on the context."""

import numpy as np
import pytest

from bbopt import make_optimizer
from bbopt.testing import OptimizerConformance

from .synthetic import ContextualBandit, run


class TestChebCB(OptimizerConformance):
    name = "chebcb"
    options = {"context_range": (0.0, 1.0)}
    rounds = 12
    converge_budget = 300
    converge_target = 3.0

    def make_problem(self):
        return ContextualBandit()


class TestTsallisINFCB(OptimizerConformance):
    name = "tsallis-inf-cb"
    options = {"context_range": (0.0, 1.0), "n_bins": 4}
    rounds = 12
    converge_budget = 400
    converge_target = 5.0

    def make_problem(self):
        return ContextualBandit()


def test_chebcb_recovers_known_cost_model():
    problem = ContextualBandit(sigma=0.02, seed=5)
    opt = make_optimizer("chebcb", problem.space, seed=5, context_range=(0.0, 1.0))
    arms, contexts = run(opt, problem, 800)
    checked = 0
    for i in range(problem.space.n_arms):
        seen = contexts[arms == i]
        if seen.size < 40:
            continue
        grid = np.linspace(*np.quantile(seen, [0.1, 0.9]), 10)  # where the arm has data
        truth = np.array([1 + problem.mean_excess(c)[i] for c in grid])
        pred = np.array([opt.predict_costs(c)[i] for c in grid])
        assert np.abs(pred - truth).max() < 0.1 * truth.max(), (i, pred, truth)
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("seed", [0, 1])
def test_chebcb_beats_best_fixed_arm(seed):
    problem = ContextualBandit(seed=seed)
    opt = make_optimizer("chebcb", problem.space, seed=seed, context_range=(0.0, 1.0))
    arms, contexts = run(opt, problem, 1000)
    means = np.array([problem.mean_excess(c) for c in contexts])  # (T, d)
    learner = means[np.arange(1000), arms][-300:].mean()
    best_fixed = means[-300:].mean(axis=0).min()
    instance_opt = means[-300:].min(axis=1).mean()
    assert learner < 0.8 * best_fixed, (learner, best_fixed, instance_opt)


def test_tsallis_cb_bins_are_independent():
    problem = ContextualBandit(seed=2)
    opt = make_optimizer("tsallis-inf-cb", problem.space, seed=2, context_range=(0.0, 1.0), n_bins=4)
    run(opt, problem, 200)
    assert opt.K.shape == (4, problem.space.n_arms)
    assert (opt.t > 20).all() and opt.t.sum() == 200 + 4


@pytest.mark.parametrize("name", ["chebcb", "tsallis-inf-cb"])
def test_contextual_learners_need_a_range_and_a_context(name):
    space = ContextualBandit().space
    with pytest.raises(ValueError, match="context_range"):
        make_optimizer(name, space)
    opt = make_optimizer(name, space, context_range=(0, 1))
    with pytest.raises(ValueError, match="needs a context"):
        opt.ask()
