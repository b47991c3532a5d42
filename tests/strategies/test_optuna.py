"""The optuna bridge: conformance (TPE, GP samplers), failed trials, x0, Choice spaces, options."""

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from bbopt import Box, make_optimizer, minimize  # noqa: E402
from bbopt.options import OptionError  # noqa: E402
from bbopt.problems import get  # noqa: E402
from bbopt.spaces import Choice  # noqa: E402
from bbopt.testing import OptimizerConformance  # noqa: E402


class TestOptunaTPE(OptimizerConformance):
    name = "optuna"
    converge_budget = 300
    converge_target = 0.05  # TPE models densities, not a local quadratic: a coarse gap in 4-D


class TestOptunaTPEBatched(OptimizerConformance):
    name = "optuna"
    options = {"popsize": 4, "x0": [0.5, -0.5, 0.25, 0.0], "multivariate": True, "constant_liar": True}


class TestOptunaGP(OptimizerConformance):
    name = "optuna"
    options = {"sampler": "GPSampler", "n_startup_trials": 2}
    rounds = 4  # each GP ask fits a model: a few rounds show the contract


def test_nonfinite_losses_are_failed_trials_and_never_the_best():
    opt = make_optimizer("optuna", Box(-1, 1, dim=2), seed=0, popsize=3)
    batch = opt.ask()
    opt.tell(batch, [np.nan, np.inf, 0.5])
    states = [t.state for t in opt._study.trials]
    assert states == [optuna.trial.TrialState.FAIL] * 2 + [optuna.trial.TrialState.COMPLETE]
    assert opt.best[1] == 0.5


def test_batched_asks_stay_running_and_tells_come_back_in_any_order():
    opt = make_optimizer("optuna", Box(-1, 1, dim=2), seed=0, popsize=4)
    batch = opt.ask()
    assert len(batch) == 4 and len({tuple(x) for x in batch.x}) == 4
    assert [t.state for t in opt._study.trials] == [optuna.trial.TrialState.RUNNING] * 4
    opt.tell(batch.subset([2]), [1.0])
    opt.tell(batch.subset([0, 3]), [3.0, 0.25])
    assert opt.n_pending == 1 and opt._study.trials[2].value == 1.0 and opt._study.trials[3].value == 0.25


def test_x0_is_the_first_trial():
    x0 = [0.5, -0.5, 0.25]
    opt = make_optimizer("optuna", Box(-1, 1, dim=3), seed=0, x0=x0, popsize=2)
    assert np.array_equal(opt.ask().x[0], x0)


def test_choice_space_finds_the_best_arm():
    space = Choice(list(range(0, 24, 2)))  # the callable sees the arm's value, the strategy its index
    result = minimize(lambda v: float((v - 14) ** 2), "optuna", 40, space=space, seed=0, progress=False)
    assert result.fun == 0.0 and int(result.x) == 7


def test_same_seed_same_trials_on_a_run():
    runs = [minimize(get("sphere", dim=4), "optuna", 40, seed=3, progress=False, options={"popsize": 4})
            for _ in range(2)]
    assert runs[0].fun == runs[1].fun and np.array_equal(runs[0].x, runs[1].x)


@pytest.mark.parametrize("options, option", [({"sampler": "TPESamplr"}, "sampler"), ({"sampler": "GridSampler"}, "sampler"),
                                             ({"popsize": 0}, "popsize"), ({"x0": [0.0, 3.0]}, "x0"),
                                             ({"n_startup_trails": 5}, "n_startup_trails"),
                                             ({"sampler": "RandomSampler", "multivariate": True}, "multivariate")])
def test_bad_options_name_the_option(options, option):
    with pytest.raises(OptionError) as err:
        make_optimizer("optuna", Box(-1, 1, dim=2), seed=0, **options)
    assert err.value.option == option


def test_x0_on_a_choice_space_is_refused():
    with pytest.raises(OptionError, match="x0 is not used"):
        make_optimizer("optuna", Choice([1, 2, 3]), seed=0, x0=[1.0])
