"""The weighted-Lasso problem: the rescaling trick equals a direct Lasso, CV is K-fold, penalties act per feature."""

import warnings

import numpy as np
import pytest

from bbopt import minimize
from bbopt.problems import get


@pytest.fixture(scope="module")
def problem():
    return get("lasso", dataset="diabetes", degree=2)


def test_dimensions_and_bounds(problem):
    assert problem.dim == 65 and problem.space.dim == 65  # 10 features + 45 products + 10 squares
    assert get("lasso", dataset="breast_cancer", degree=1).dim == 30
    assert problem.optimum is None


def test_equal_penalties_equal_a_plain_lasso_in_every_fold(problem):
    from sklearn.linear_model import Lasso

    alpha = 10**-1.5
    X, y = problem._dev
    losses = []
    for k in range(5):
        held = problem._fold == k
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = Lasso(alpha=alpha, tol=1e-10, max_iter=100000).fit(X[~held], y[~held])
        losses.append(np.mean((y[held] - ref.predict(X[held])) ** 2) / np.var(y[held]))
    assert np.bincount(problem._fold).min() >= len(y) // 5  # five balanced folds
    assert problem.evaluate(np.full((1, 65), np.log10(alpha)))[0] == pytest.approx(np.mean(losses), rel=1e-3)


def test_penalties_act_per_feature(problem):
    x = np.full(65, -2.0)
    x[:5] = 1.0  # λ = 10 on the first five features: they must drop out
    w, _ = problem.fit(x, *problem._dev)
    assert np.all(w[:5] == 0.0) and np.count_nonzero(w[5:]) > 10
    dropped_all = problem.evaluate(np.full((1, 65), 1.0))[0]
    assert dropped_all == pytest.approx(1.0, abs=0.05)  # predicting the training mean
    assert problem.evaluate(x[None])[0] == problem.evaluate(x[None])[0]  # deterministic
    assert 0.0 < problem.test_loss(x) < 2.0


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="dataset"):
        get("lasso", dataset="mnist")
    with pytest.raises(ValueError, match="degree"):
        get("lasso", degree=3)
    with pytest.raises(ValueError, match="folds"):
        get("lasso", folds=1)


def test_runs_with_rducb_for_a_few_evaluations(problem):
    result = minimize(problem, "rducb", 12, seed=0, options={"n_init": 8, "fit_evals": 3, "polish_iter": 3},
                      progress=False)
    assert np.isfinite(result.fun) and result.fun < 1.0
    assert problem.test_loss(result.x) < 1.5
