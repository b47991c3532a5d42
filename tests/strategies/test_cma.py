"""CMA-ES through pycma: asks beyond an open generation, and the box it searches."""

import cma
import numpy as np
import pytest

from bbopt import Box, make_optimizer
from bbopt.seeding import as_seed_sequence

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pycma's notes on population sizes


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


@pytest.mark.parametrize("handler", ["transform", "penalty"])
def test_a_hard_box_is_pycmas_own_bound_handling_in_the_unit_cube(handler):
    """bbopt's cma on a hard box = pycma with bounds [0, 1] and the same handler, same normal draws,
    the candidates mapped to the box (clipped for the penalty handler, which pycma leaves outside)."""
    space = Box([-5, -5, 0, 1], [5, 5, 2, 9])
    opt = make_optimizer("cma", space, seed=3, restarts=0, bounds_handling=handler, popsize=6)
    rng = np.random.default_rng(as_seed_sequence(3))
    handlers = {"transform": cma.BoundTransform, "penalty": cma.BoundPenalty}
    es = cma.CMAEvolutionStrategy(np.full(4, 0.5), 0.2, {
        "seed": np.nan, "randn": lambda *shape: rng.standard_normal(size=shape), "verbose": -9, "verb_log": 0,
        "verb_disp": 0, "CMA_diagonal": False, "popsize": 6, "bounds": [0.0, 1.0],
        "BoundaryHandler": handlers[handler]})
    target = np.array([4.0, -5.0, 1.0, 3.0])  # a boundary optimum in one coordinate
    for _ in range(25):
        X = np.asarray(es.ask())
        mine = opt.ask()
        np.testing.assert_allclose(mine.x, space.clip(space.from_unit(X)), rtol=0, atol=1e-12)
        losses = np.sum((mine.x - target) ** 2, axis=1)
        es.tell(list(X), losses.tolist())
        opt.tell(mine, losses)
    assert opt.best[1] == pytest.approx(float(es.result.fbest), abs=1e-15)
