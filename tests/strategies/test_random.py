"""Random search: its start point is evaluated first; options follow docs/options.md."""

import numpy as np
import pytest

from bbopt import Box, Choice, make_optimizer, minimize
from bbopt.options import OptionError


def test_x0_is_the_first_candidate_then_uniform_samples():
    opt = make_optimizer("random", Box(-1, 1, dim=3), seed=0, popsize=4, x0=[0.5, -0.5, 0.25])
    first = opt.ask()
    assert len(first) == 4 and np.array_equal(first.x[0], [0.5, -0.5, 0.25])
    assert not np.array_equal(first.x[1], first.x[0])
    opt.tell(first, np.zeros(4))
    assert not any(np.array_equal(x, [0.5, -0.5, 0.25]) for x in opt.ask().x)


def test_a_run_evaluates_the_problems_start_point_first():
    class Start:
        space, x0, optimum = Box(-1, 1, dim=2), [0.3, 0.3], 0.0

        def evaluate(self, batch):
            return np.sum((np.asarray(batch.x) - 0.3) ** 2, axis=1)

    result = minimize(Start(), "random", 10, seed=0)
    assert result.history[0]["x"] == [0.3, 0.3] and result.fun == 0.0


@pytest.mark.parametrize("space, options, option", [
    (Box(-1, 1, dim=2), {"x0": [2.0, 0.0]}, "x0"),
    (Box(-1, 1, dim=2), {"x0": [0.0]}, "x0"),
    (Choice([1, 2, 3]), {"x0": [0]}, "x0"),
    (Box(-1, 1, dim=2), {"popsize": 0}, "popsize"),
    (Box(-1, 1, dim=2), {"batch_size": 4}, "batch_size"),
])
def test_bad_options_name_the_option(space, options, option):
    with pytest.raises(OptionError, match=option) as err:
        make_optimizer("random", space, seed=0, **options)
    assert err.value.option == option
    if option == "batch_size":
        assert "now called 'popsize'" in str(err.value)
