"""Baselines through the same merge code, and the diagonal Fisher against a hand computation."""

import numpy as np
import pytest
import torch

from bbopt.merge import baselines
from bbopt.merge import operators as ops
from bbopt.merge.fisher import diagonal_fisher
from bbopt.merge.fitness import Task, score
from bbopt.merge.workloads import DigitsMLP
from bbopt.problems import MergeProblem


@pytest.fixture(scope="module")
def problem(digits):
    return MergeProblem(digits.model, digits.experts, digits.fitness, test=digits.test)


def _ta_loss(digits, small, lam, method=ops.task_arithmetic, **kw):
    m = DigitsMLP(small["hidden"], small["depth"])
    m.load_state_dict(method(digits.model.state_dict(), digits.experts, lam=lam, **kw))
    return score(m, digits.fitness)["ce"]


def test_task_arithmetic_grid_picks_the_best_lambda(problem, digits, small):
    res = baselines.task_arithmetic_grid(problem)
    assert res.n_evals == 21
    direct = [_ta_loss(digits, small, lam) for lam in baselines.TA_GRID]
    assert res.loss == pytest.approx(min(direct), rel=1e-5)
    assert res.x == [baselines.TA_GRID[int(np.argmin(direct))]]
    assert res.test is not None and 0 <= res.test["accuracy"] <= 1


def test_uniform_soup_is_task_arithmetic_at_one_over_k(problem, digits, small):
    res = baselines.uniform_soup(problem)
    assert res.n_evals == 1
    assert res.loss == pytest.approx(_ta_loss(digits, small, 1 / 3), rel=1e-5)


def test_ties_and_dare_defaults_and_grids(problem, digits, small):
    default = baselines.ties(problem)
    assert default.n_evals == 1
    assert default.loss == pytest.approx(_ta_loss(digits, small, 1.0, ops.ties, density=0.2), rel=1e-5)
    g = baselines.ties_grid(problem)
    assert g.n_evals == 24
    assert g.loss <= _ta_loss(digits, small, 1.1, ops.ties, density=0.2) + 1e-6
    d = baselines.dare_grid(problem)
    assert d.n_evals == 12 and np.isfinite(d.loss)
    assert baselines.dare(problem).n_evals == 1


def test_fisher_baseline_and_random_search(problem, digits):
    res = baselines.fisher(problem, digits.expert_data, n_examples=32)
    assert res.n_evals == 1 and np.isfinite(res.loss)
    # scoring a full state dict leaves the problem's own merges untouched
    x = problem.x0
    assert problem.evaluate(x[None])[0] == pytest.approx(problem.report(x)["fitness"]["ce"])
    rs = baselines.search(problem, "random", budget=20, seed=0)
    assert rs.n_evals == 20 and np.isfinite(rs.loss)
    with pytest.raises(ValueError, match="expert_data"):
        baselines.fisher(problem, digits.expert_data[:1])


def test_diagonal_fisher_matches_hand_computed_logistic_regression():
    gen = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(3, 2, bias=False)
    w = torch.randn(2, 3, generator=gen)
    x = torch.randn(5, 3, generator=gen)
    y = torch.tensor([0, 1, 1, 0, 1])
    fisher = diagonal_fisher(lin, {"weight": w}, [Task("t", x, y)], n_examples=5)
    p = torch.softmax(x @ w.T, dim=1)
    grads = (torch.nn.functional.one_hot(y, 2).float() - p)[:, :, None] * x[:, None, :]  # d log p_y / dW
    assert torch.allclose(fisher["weight"], (grads ** 2).mean(0), atol=1e-6)
    sampled = diagonal_fisher(lin, {"weight": w}, [Task("t", x, y)], n_examples=5, empirical=False, seed=1)
    again = diagonal_fisher(lin, {"weight": w}, [Task("t", x, y)], n_examples=5, empirical=False, seed=1)
    assert torch.equal(sampled["weight"], again["weight"])
