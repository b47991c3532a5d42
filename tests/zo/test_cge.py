"""DeepZero CGE: exact coordinate estimates, sparsity, feature reuse, ZO-GraSP, direction, conformance."""

import numpy as np
import pytest
import torch

from bbopt import make_optimizer, minimize
from bbopt.options import OptionError
from bbopt.testing import OptimizerConformance

from .test_mezo import cosine, estimates
from .toys import autograd_grad, flat, regression, tiny_mlp


def test_dense_estimate_is_the_gradient():
    p = tiny_mlp(single_batch=True)
    g = autograd_grad(p)
    est = estimates(p, "cge", 1, lr=0.1, eps=1e-3)[0]
    assert cosine(est, g) > 0.995
    assert float(est.norm() / g.norm()) == pytest.approx(1.0, abs=0.02)


def test_sparse_estimate_lives_on_the_drawn_coordinates():
    p = tiny_mlp(single_batch=True)
    opt = make_optimizer("cge", p.space, seed=0, lr=0.1, density=0.2, mask_every=2)
    batch = opt.ask()
    assert len(batch) == 1 + sum(c.numel() for c in opt.coords)
    assert len(batch) - 1 == pytest.approx(0.2 * p.space.n_params, abs=4)
    drawn = [c.clone() for c in opt.coords]
    before = flat(p.space)
    opt.tell(batch, p.evaluate(batch))
    moved = torch.nonzero(flat(p.space) != before).view(-1)
    offsets = np.cumsum([0] + [t.numel() for t in p.space.tensors])
    allowed = set(torch.cat([c + int(o) for c, o in zip(drawn, offsets)]).tolist())
    assert moved.numel() > 0 and set(moved.tolist()) <= allowed
    for _ in range(2):  # mask_every=2: same set at step 1, a new one at step 2
        batch = opt.ask()
        opt.tell(batch, p.evaluate(batch))
        same = all(torch.equal(a, b) for a, b in zip(drawn, opt.coords))
        assert same == (opt.step == 2)


def test_feature_reuse_gives_the_same_estimate():
    a = estimates(tiny_mlp(single_batch=True, mode="batched"), "cge", 1, lr=0.1)[0]
    b = estimates(tiny_mlp(single_batch=True, mode="batched", feature_reuse=False), "cge", 1, lr=0.1)[0]
    c = estimates(tiny_mlp(single_batch=True, mode="inplace"), "cge", 1, lr=0.1)[0]
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(a, c, rtol=1e-3, atol=1e-3)


def test_zo_grasp_sets_layer_densities_and_restores_theta():
    p = tiny_mlp(single_batch=True)
    before = flat(p.space)
    opt = make_optimizer("cge", p.space, seed=0, lr=1e-9, density=0.1, layer_density="grasp", grasp_q=16)
    for phase in ("grasp0", "grasp1"):
        assert opt.phase == phase
        batch = opt.ask()
        assert len(batch) == 17
        opt.tell(batch, p.evaluate(batch))
    assert opt.phase == "cge" and torch.equal(before, flat(p.space))
    sizes = [t.numel() for t in p.space.tensors]
    kept = sum(r * n for r, n in zip(opt.ratios, sizes))
    assert kept == pytest.approx(0.1 * sum(sizes), abs=len(sizes))
    assert len(set(np.round(opt.ratios, 4))) > 1  # not uniform
    batch = opt.ask()
    assert len(batch) - 1 == pytest.approx(kept, abs=len(sizes))


def test_every_step_moves_downhill():
    p = tiny_mlp(single_batch=True)
    opt = make_optimizer("cge", p.space, seed=0, lr=0.01, density=0.3, eps=1e-3)
    for _ in range(3):
        before, g = flat(p.space), autograd_grad(p)
        batch = opt.ask()
        opt.tell(batch, p.evaluate(batch))
        assert float((flat(p.space) - before) @ g) < 0


@pytest.mark.parametrize("options", [{"lr": 0.3}, {"lr": 0.03, "rule": "torch", "torch_optimizer": "sgd",
                                                   "torch_options": {"momentum": 0.9}}], ids=str)
def test_loss_decreases(options):
    p = regression()
    start = p.mean_loss([p.batch(t) for t in range(8)])
    minimize(p, "cge", 400, seed=0, options={"density": 0.5, "mask_every": 1, **options}, progress=False)
    assert p.mean_loss([p.batch(t) for t in range(8)]) < 0.1 * start


def test_options_are_checked():
    space = regression().space
    with pytest.raises(OptionError, match="cge: density must be a number in \\(0"):
        make_optimizer("cge", space, density=0)
    with pytest.raises(OptionError, match="cge: layer_density must be one of"):
        make_optimizer("cge", space, density=0.5, layer_density="snip")
    with pytest.raises(OptionError, match="cge: layer_density is not used with density=1"):
        make_optimizer("cge", space, layer_density="grasp")
    with pytest.raises(OptionError, match="cge: grasp_q is not used with layer_density='uniform'"):
        make_optimizer("cge", space, density=0.5, grasp_q=8)
    with pytest.raises(OptionError, match="now called 'eps'"):
        make_optimizer("cge", space, mu=1e-3)
    with pytest.raises(OptionError, match="dense"):
        make_optimizer("cge", space, rule="momentum")


class TestCGEConformance(OptimizerConformance):
    name = "cge"
    options = {"lr": 0.3, "density": 0.5, "mask_every": 2}
    converge_budget = 3000

    def make_problem(self):
        return regression()


class TestGraspCGEConformance(TestCGEConformance):
    options = {"lr": 0.3, "density": 0.5, "layer_density": "grasp", "grasp_q": 4}
    converge_budget = None
