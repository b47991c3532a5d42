"""The block-coordinate strategy: conformance, visit order, exact budget, incumbent elsewhere."""

import numpy as np
import pytest

from bbopt import Box, make_optimizer, minimize
from bbopt.problems import get
from bbopt.testing import OptimizerConformance


class TestBlockCMA(OptimizerConformance):
    name = "block"
    options = {"n_blocks": 2, "inner": "cma", "inner_options": {"popsize": 6}}
    converge_budget = 3000
    converge_target = 1e-6


class TestBlockNevergradDE(OptimizerConformance):
    name = "block"
    options = {"n_blocks": 2, "inner": "nevergrad", "inner_options": {"optimizer": "DE", "popsize": 4}}
    converge_budget = 4000
    converge_target = 1e-4


class TestBlockRandom(OptimizerConformance):
    name = "block"
    options = {"blocks": [[0, 1], [1, 4]], "inner": "random", "inner_options": {"popsize": 5}}
    converge_budget = 3000
    converge_target = 2.0  # coordinate-wise random search: a coarse target is fair


class Recorder:
    """Sphere on a Box that declares 3 blocks; records every candidate evaluated."""

    def __init__(self, blocks=((0, 2), (2, 5), (5, 6))):
        self.space = Box(-3.0, 3.0, dim=6)
        self.space.blocks = [list(b) for b in blocks]
        self.optimum = 0.0
        self.seen = []

    def evaluate(self, batch):
        x = np.asarray(batch.x, dtype=float)
        self.seen.append(x.copy())
        return np.sum((x - 0.5) ** 2, axis=1)


def varying_block(x, blocks):
    """The one block whose coordinates differ across a population (None if none or several)."""
    moving = [b for b, (s, e) in enumerate(blocks) if np.ptp(x[:, s:e], axis=0).max() > 0]
    return moving[0] if len(moving) == 1 else None


def test_visits_blocks_in_order_and_holds_the_incumbent_elsewhere():
    problem = Recorder()
    opt = make_optimizer("block", problem.space, seed=0, inner_options={"popsize": 4})
    blocks = opt.blocks
    order = []
    for _ in range(7):
        incumbent = opt.best[0] if opt.best[0] is not None else problem.space.center
        batch = opt.ask()
        x = np.asarray(batch.x)
        b = varying_block(x, blocks)
        order.append(b)
        s, e = blocks[b]
        rest = np.delete(x, np.arange(s, e), axis=1)
        assert np.array_equal(rest, np.broadcast_to(np.delete(incumbent, np.arange(s, e)), rest.shape))
        assert opt.current_block == b
        opt.tell(batch, problem.evaluate(batch))
    assert order == [0, 1, 2, 0, 1, 2, 0]


def test_generations_per_visit_repeats_a_block():
    problem = Recorder()
    opt = make_optimizer("block", problem.space, seed=0, inner_options={"popsize": 4}, generations_per_visit=2)
    order = []
    for _ in range(6):
        batch = opt.ask()
        order.append(varying_block(np.asarray(batch.x), opt.blocks))
        opt.tell(batch, problem.evaluate(batch))
    assert order == [0, 0, 1, 1, 2, 2]


def test_spends_the_budget_exactly_and_improves():
    problem = Recorder()
    result = minimize(problem, "block", 101, seed=1, options={"inner_options": {"popsize": 6}})
    assert result.n_evals == 101 == sum(len(x) for x in problem.seen)
    first = np.sum((problem.seen[0] - 0.5) ** 2, axis=1).min()
    assert result.fun < 0.1 * first


def test_explicit_n_asks_across_visits_and_partial_tells():
    problem = Recorder()
    opt = make_optimizer("block", problem.space, seed=2, inner_options={"popsize": 4})
    batch = opt.ask(6)  # one full visit of block 0 and half of block 1's
    assert [varying_block(np.asarray(batch.x)[:4], opt.blocks), varying_block(np.asarray(batch.x)[4:], opt.blocks)] \
        == [0, 1]
    losses = problem.evaluate(batch)
    opt.tell(batch.subset([5, 0, 3]), losses[[5, 0, 3]])
    opt.tell(batch.subset([1, 2, 4]), losses[[1, 2, 4]])
    assert opt.n_pending == 0 and np.isfinite(opt.best[1])
    rest = opt.ask()  # the two queued candidates of block 1
    assert len(rest) == 2


def test_budget_option_is_shared_among_inner_optimizers():
    opt = make_optimizer("block", Box(-1, 1, dim=4), seed=0, n_blocks=2, inner="nevergrad",
                         inner_options={"optimizer": "OnePlusOne"}, budget=101)
    assert [inner.budget for inner in opt.inners] == [51, 51]


@pytest.mark.parametrize("options, message", [
    ({}, "give blocks"),
    ({"n_blocks": 0}, "n_blocks must be"),
    ({"blocks": [[0, 2], [1, 4]]}, "partition"),
    ({"blocks": [[0, 2]]}, "partition"),
    ({"blocks": [[0, "a"], [2, 4]]}, "must be \\[start, stop\\]"),
    ({"n_blocks": 2, "inner": "no-such"}, "unknown optimizer"),
    ({"n_blocks": 2, "inner_options": {"popsize": 4, "sigma": 1}}, "no option 'sigma'"),
    ({"n_blocks": 2, "generations_per_visit": 0}, "generations_per_visit"),
])
def test_bad_options_name_the_field(options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make_optimizer("block", Box(-1, 1, dim=4), seed=0, **options)


def test_works_on_a_registered_problem_with_n_blocks():
    result = minimize(get("rosenbrock", dim=4), "block", 600, seed=0,
                      options={"n_blocks": 2, "inner_options": {"popsize": 8}})
    assert result.n_evals == 600 and np.isfinite(result.fun)


class ShiftedSphere:
    """Sphere centred at ``centre`` on ``space``, declaring a start point ``x0``."""

    def __init__(self, space, centre, x0=None):
        self.space, self.centre, self.x0, self.optimum = space, np.asarray(centre, dtype=float), x0, 0.0

    def evaluate(self, batch):
        return np.sum((np.asarray(batch.x) - self.centre) ** 2, axis=1)


def test_the_problems_x0_starts_the_search_and_reaches_each_inner_strategy():
    x0 = [0.9, -0.7, 0.4, 0.1]
    problem = ShiftedSphere(Box(-1, 1, dim=4), np.zeros(4), x0=x0)
    seen = []
    minimize(problem, "block", 8, seed=0, callbacks=[lambda info: seen.append(np.asarray(info.batch.x))],
             options={"n_blocks": 2, "inner": "random", "inner_options": {"popsize": 4}})
    first = seen[0]
    assert np.array_equal(first[0], x0)  # random evaluates its x0 (the block's part of the start) first
    assert np.array_equal(first[:, 2:], np.broadcast_to(x0[2:], (4, 2)))  # block 1 held at the start point
    opt = make_optimizer("block", problem.space, seed=0, n_blocks=2, x0=x0)
    assert [inner.x0.tolist() for inner in opt.inners] == [x0[:2], x0[2:]]


def test_inner_boxes_keep_soft_so_the_search_may_leave_a_soft_box():
    soft = Box(-5, 5, dim=4, soft=True)
    opt = make_optimizer("block", soft, seed=0, n_blocks=2)
    assert all(inner.space.soft for inner in opt.inners)
    result = minimize(ShiftedSphere(soft, np.full(4, 7.0)), "block", 1500, seed=0,
                      options={"n_blocks": 2, "inner_options": {"popsize": 8}})
    assert result.fun < 1e-3 and (result.x > 5).all()  # the optimum lies outside the soft box
    hard = minimize(ShiftedSphere(Box(-5, 5, dim=4), np.full(4, 7.0)), "block", 300, seed=0,
                    options={"n_blocks": 2, "inner_options": {"popsize": 8}})
    assert (hard.x <= 5).all()


@pytest.mark.parametrize("options, option", [
    ({"n_blocks": 2, "x0": [0, 0, 0, 3]}, "x0"),
    ({"n_blocks": 2, "x0": [0, 0]}, "x0"),
    ({"n_blocks": 2, "inner_options": {"x0": [0, 0]}}, "inner_options"),
    ({"blocks": [[0, 2], [2, 4]], "n_blocks": 2}, "n_blocks"),
])
def test_start_point_and_block_options_are_checked(options, option):
    from bbopt.options import OptionError

    with pytest.raises(OptionError) as err:
        make_optimizer("block", Box(-1, 1, dim=4), seed=0, **options)
    assert err.value.option == option and option in str(err.value)
