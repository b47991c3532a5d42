"""CMA-ES through pycma: asks beyond an open generation, and the box it searches."""

import numpy as np

from bbopt import Box, make_optimizer


def sphere(x):
    return np.sum(np.asarray(x) ** 2, axis=1)


def test_two_asks_before_a_tell_make_one_update_of_both():
    opt = make_optimizer("cma", Box(-5, 5, dim=3), seed=0, popsize=6)
    first, second = opt.ask(), opt.ask()
    assert len(first) == len(second) == 6
    opt.tell(second, sphere(second.x))
    opt.tell(first, sphere(first.x))  # pycma refused a second tell for one ask before
    assert opt.es.countiter == 1 and opt.n_pending == 0
    assert len(opt.ask()) == 6


def test_rounds_that_straddle_a_generation_extend_it():
    opt = make_optimizer("cma", Box(-5, 5, dim=3), seed=0, popsize=6, restarts=0)
    for _ in range(40):
        batch = opt.ask(4)
        opt.tell(batch, sphere(batch.x))
    assert opt.es.countiter == 20  # generations of 8 = two rounds of 4
    assert opt.best[1] < 1e-3
