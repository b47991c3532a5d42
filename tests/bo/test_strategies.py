"""RDUCB, GP-UCB and TuRBO-1: the conformance contract, batches, fantasies, bad input, and
RDUCB against random search on a 20-D additive function."""

import numpy as np
import pytest

from bbopt import make_optimizer, minimize
from bbopt.options import OptionError
from bbopt.problems import get
from bbopt.spaces import Box
from bbopt.testing import OptimizerConformance

FAST = {"fit_evals": 5, "polish_iter": 5}


class TestRDUCB(OptimizerConformance):
    name = "rducb"
    options = {"n_init": 3, "popsize": 2, "grid_size": 40, "zoom_points": 8, "local_points": 4, **FAST}
    converge_budget = 40
    converge_target = 0.05  # sphere 4-D on [−5, 5]: from ~25 at random to ≤ 0.05
    converge_seeds = (0, 1)


class TestGPUCB(OptimizerConformance):
    name = "gp-ucb"
    options = {"n_init": 3, "popsize": 2, "n_candidates": 200, **FAST}
    converge_budget = 40
    converge_target = 0.05
    converge_seeds = (0, 1)


class TestTuRBO(OptimizerConformance):
    name = "turbo"
    options = {"n_init": 4, "popsize": 2, "n_candidates": 200, "fit_evals": 10}
    converge_budget = 40
    converge_target = 0.5
    converge_seeds = (0, 1)


@pytest.mark.parametrize("name", ["rducb", "gp-ucb", "turbo"])
def test_batch_points_are_distinct_and_fantasies_spread_them(name):
    problem = get("sphere", dim=3)
    opt = make_optimizer(name, problem.space, seed=0, n_init=4, fit_evals=3)
    first = opt.ask(4)
    opt.tell(first, problem.evaluate(first))
    batch = opt.ask(5)  # model-based, five at once
    x = np.asarray(batch.x)
    assert x.shape == (5, 3) and problem.space.contains(x).all()
    gaps = np.abs(x[:, None, :] - x[None, :, :]).max(-1)[np.triu_indices(5, 1)]
    assert gaps.min() > 1e-6
    later = opt.ask(1)  # the five are pending: a new point avoids them too
    assert np.abs(x - np.asarray(later.x)).max(-1).min() > 1e-6
    opt.tell(batch.subset([4, 0]), problem.evaluate(batch.subset([4, 0])))
    assert opt.n_pending == 4


def test_failed_evaluations_enter_the_model_as_worst():
    problem = get("sphere", dim=2)
    opt = make_optimizer("rducb", problem.space, seed=0, n_init=4, **FAST)
    for r in range(8):
        b = opt.ask()
        losses = problem.evaluate(b)
        opt.tell(b, [np.nan] if r % 3 == 0 else losses)
    z = opt._targets()
    assert np.isfinite(z).all() and z[[0, 3, 6]].tolist() == [z.max()] * 3


@pytest.mark.parametrize("seed", [0, 1])
def test_rducb_beats_random_search_in_20d(seed):
    """Styblinski–Tang 20-D, 100 evaluations: RDUCB's regret is well below random search's.

    (Measured with these settings: 0.33–0.60 of random search's regret over seeds 0–2.)
    """
    regret = {}
    cheap = {"fit_evals": 5, "polish_iter": 0, "grid_size": 40, "zoom_points": 8, "local_points": 8}
    for name, options in [("rducb", cheap), ("random", {})]:
        problem = get("styblinski-tang", dim=20, lower=-4.0, upper=4.0)
        result = minimize(problem, name, 100, seed=seed, options=options, progress=False)
        regret[name] = result.fun - problem.optimum
    assert regret["rducb"] < 0.7 * regret["random"], regret


@pytest.mark.parametrize("name,options,match", [
    ("rducb", {"n_edges": 5}, "n_edges"),
    ("rducb", {"zoom_points": 3}, "zoom_points"),
    ("rducb", {"beta_scale": -1.0}, "beta_scale"),
    ("rducb", {"noise_var": 0.0}, "noise_var"),
    ("gp-ucb", {"n_candidates": 1}, "n_candidates"),
    ("turbo", {"length_init": 2.0}, "length"),
    ("turbo", {"popsize": 0}, "popsize"),
])
def test_bad_options_name_the_field(name, options, match):
    with pytest.raises(ValueError, match=match):
        make_optimizer(name, Box(0, 1, dim=3), seed=0, **options)


@pytest.mark.parametrize("name", ["rducb", "gp-ucb", "turbo"])
def test_unbounded_box_is_refused(name):
    with pytest.raises(ValueError, match="finite bounds"):
        make_optimizer(name, Box(-np.inf, np.inf, dim=2), seed=0)


def test_turbo_shrinks_and_restarts():
    """On a flat function nothing improves: the trust region halves until it restarts."""
    space = Box(0, 1, dim=2)
    opt = make_optimizer("turbo", space, seed=0, n_init=3, fit_evals=2, n_candidates=50, failure_tol=1)
    for _ in range(3 + 8):
        b = opt.ask()
        opt.tell(b, np.ones(len(b)))
    assert opt._run >= 1  # 0.8 · 2⁻⁷ < 2⁻⁷ after 7 failures: at least one restart


def test_turbo_step_with_no_finite_loss_is_a_failure():
    """Issue 11 defect 2: every loss of a trust-region step failed (NaN) while the run's best is
    positive — that is a failure, never a success that grows the region."""
    space = Box(0, 1, dim=2)
    opt = make_optimizer("turbo", space, seed=0, n_init=3, fit_evals=5, n_candidates=50, success_tol=1)
    design = opt.ask(3)
    opt.tell(design, 1.0 + np.arange(len(design), dtype=float))  # positive losses: best 1.0
    for step in range(3):
        b = opt.ask()
        opt.tell(b, [np.nan] * len(b))
        assert opt._successes == 0 and opt._failures == step + 1
    assert opt._length == pytest.approx(0.8)
    b = opt.ask()
    opt.tell(b, [0.5] * len(b))  # a finite improvement still counts
    assert opt._failures == 0 and opt._length == pytest.approx(1.6)


@pytest.mark.parametrize("name", ["rducb", "gp-ucb", "turbo"])
def test_x0_is_evaluated_first_and_checked(name):
    problem = get("sphere", dim=3)
    x0 = [0.5, -1.0, 2.0]
    opt = make_optimizer(name, problem.space, seed=0, x0=x0, n_init=4, fit_evals=3)
    first = opt.ask(2)
    np.testing.assert_allclose(first.x[0], x0)
    assert np.abs(first.x[1] - np.asarray(x0)).max() > 1e-6
    opt.tell(first, problem.evaluate(first))
    later = np.asarray(opt.ask(2).x)
    assert np.abs(later - np.asarray(x0)).max(1).min() > 1e-9  # used once, not repeated
    with pytest.raises(ValueError, match="x0"):
        make_optimizer(name, problem.space, seed=0, x0=[0.0, 0.0])
    with pytest.raises(ValueError, match="x0"):
        make_optimizer(name, problem.space, seed=0, x0=[0.0, 0.0, 99.0])


@pytest.mark.parametrize("name", ["rducb", "gp-ucb", "turbo"])
@pytest.mark.parametrize("old,new", [("noise", "noise_var"), ("batch_size", "popsize")])
def test_old_option_names_point_to_the_new_ones(name, old, new):
    with pytest.raises(OptionError, match=f"it is now called '{new}'") as err:
        make_optimizer(name, Box(0, 1, dim=3), seed=0, **{old: 1})
    assert err.value.option == old


def test_rducb_refuses_edge_fraction_beside_n_edges():
    with pytest.raises(OptionError, match="edge_fraction is not used") as err:
        make_optimizer("rducb", Box(0, 1, dim=5), seed=0, n_edges=2, edge_fraction=0.4)
    assert err.value.option == "edge_fraction"


@pytest.mark.parametrize("name", ["rducb", "gp-ucb", "turbo"])
def test_lengthscale_prior_choices(name):
    with pytest.raises(OptionError, match="lengthscale_prior must be one of") as err:
        make_optimizer(name, Box(0, 1, dim=3), seed=0, lengthscale_prior="hvarfner")
    assert err.value.option == "lengthscale_prior"
    problem = get("sphere", dim=3)
    for prior in (None, "tied", "dimension-scaled"):
        opt = make_optimizer(name, problem.space, seed=0, n_init=4, lengthscale_prior=prior)
        for _ in range(2):
            b = opt.ask(4)
            opt.tell(b, problem.evaluate(b))
        assert opt.last_fit is not None and opt.last_fit.converged


@pytest.mark.parametrize("name", ["rducb", "gp-ucb", "turbo"])
def test_output_transform_choices(name):
    with pytest.raises(OptionError, match="output_transform must be one of") as err:
        make_optimizer(name, Box(0, 1, dim=3), seed=0, output_transform="log")
    assert err.value.option == "output_transform"
    problem = get("rosenbrock", dim=3)
    opt = make_optimizer(name, problem.space, seed=0, n_init=4, output_transform="power")
    for _ in range(2):
        b = opt.ask(4)
        opt.tell(b, problem.evaluate(b))
    assert opt.last_fit is not None and opt.last_fit.converged
