"""The nevergrad bridge: popsize (nevergrad's num_workers) and the start point."""

import numpy as np
import pytest

from bbopt import Box, make_optimizer
from bbopt.options import OptionError


def test_x0_is_the_parametrizations_initial_value():
    x0 = [0.5, -0.5, 0.25]
    opt = make_optimizer("nevergrad", Box(-1, 1, dim=3), seed=0, optimizer="OnePlusOne", x0=x0, popsize=2)
    assert np.array_equal(opt._ng.parametrization.value, x0)
    batch = opt.ask()
    assert len(batch) == 2 and np.array_equal(batch.x[0], x0)  # (1+1) asks its initial value first
    assert opt._ng.num_workers == 2


@pytest.mark.parametrize("options, option", [({"x0": [0.0, 0.0, 3.0]}, "x0"), ({"popsize": 0}, "popsize"),
                                             ({"num_workers": 2}, "num_workers"), ({"budget": -1}, "budget"),
                                             ({"optimizer": "NGOpd"}, "optimizer")])
def test_bad_options_name_the_option(options, option):
    with pytest.raises(OptionError) as err:
        make_optimizer("nevergrad", Box(-1, 1, dim=3), seed=0, **options)
    assert err.value.option == option
    if option == "num_workers":
        assert "now called 'popsize'" in str(err.value)
