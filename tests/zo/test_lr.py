"""Likelihood ratio (ULR): estimates vs autograd, variance reduction, layer-wise, 0-1 loss, conformance."""

import numpy as np
import pytest
import torch

from bbopt import make_optimizer, minimize
from bbopt.testing import OptimizerConformance

from .test_mezo import cosine, estimates
from .toys import autograd_grad, error_rate, flat, regression, tiny_mlp


def test_mean_estimate_matches_autograd():
    p = tiny_mlp(single_batch=True)
    g = autograd_grad(p)
    mean = estimates(p, "likelihood-ratio", 60, lr=0.1, sigma=0.05, copies=16).mean(0)
    assert cosine(mean, g) > 0.95
    assert float(mean.norm() / g.norm()) == pytest.approx(1.0, abs=0.15)


def test_antithetic_pairs_and_baseline_cut_the_variance():
    p = tiny_mlp(single_batch=True)
    g2 = float(autograd_grad(p).square().sum())
    var = {}
    for key, opts in {"default": {}, "plain": {"antithetic": False, "baseline": False}}.items():
        est = estimates(p, "likelihood-ratio", 40, lr=0.1, copies=8, **opts)
        var[key] = float(est.var(0).sum()) / g2
    assert var["default"] * 20 < var["plain"]


def test_layerwise_groups_cover_one_layer_each():
    p = tiny_mlp(single_batch=True)
    opt = make_optimizer("likelihood-ratio", p.space, seed=0, lr=0.1, copies=4, layerwise=True)
    batch = opt.ask()
    assert len(batch) == 2 * 4 and {s.layer for s in batch.x} == {0, 1}
    p.evaluate(batch)
    assert sorted(batch.x[0].out["sums"]) == [0, 1] and sorted(batch.x[4].out["sums"]) == [2, 3]
    before = [t.detach().clone() for t in p.space.tensors]
    opt.tell(batch, p.evaluate(batch))
    assert all((t != b).any() for t, b in zip(p.space.tensors, before))


def test_trains_the_digits_mlp_and_a_zero_one_loss():
    p = tiny_mlp(hidden=16)
    test = [p.batch(t) for t in range(6)]
    start = p.mean_loss(test, error_rate)
    minimize(p, "likelihood-ratio", 1600, seed=0, options={"lr": 0.2, "copies": 16}, progress=False)
    assert p.mean_loss(test, error_rate) < 0.5 * start
    q = tiny_mlp(hidden=16)
    q.loss = error_rate  # non-differentiable: only per-example values are used
    minimize(q, "likelihood-ratio", 1600, seed=0, options={"lr": 0.05, "copies": 16, "sigma": 0.5}, progress=False)
    assert q.mean_loss(test, error_rate) < 0.85 * start


def test_descends_on_average():
    p = tiny_mlp(single_batch=True)
    opt = make_optimizer("likelihood-ratio", p.space, seed=0, lr=1e-3, copies=16)
    total = 0.0
    for _ in range(5):
        before, g = flat(p.space), autograd_grad(p)
        batch = opt.ask()
        opt.tell(batch, p.evaluate(batch))
        total += float((flat(p.space) - before) @ g)
    assert total < 0


def test_needs_the_attached_estimate():
    p = tiny_mlp()
    opt = make_optimizer("likelihood-ratio", p.space, seed=0, copies=4)
    batch = opt.ask()
    with pytest.raises(RuntimeError, match="in this process"):
        opt.tell(batch, np.ones(len(batch)))


def test_options_are_checked():
    space = tiny_mlp().space
    with pytest.raises(ValueError, match="even"):
        make_optimizer("likelihood-ratio", space, copies=5)
    with pytest.raises(ValueError, match="dense"):
        make_optimizer("likelihood-ratio", space, rule="momentum")
    emb = torch.nn.Sequential(torch.nn.Embedding(5, 3))
    from bbopt.params import ModelParams
    with pytest.raises(ValueError, match="no Linear"):
        make_optimizer("likelihood-ratio", ModelParams(emb))


class TestLikelihoodRatioConformance(OptimizerConformance):
    name = "likelihood-ratio"
    options = {"lr": 0.02, "copies": 8}
    converge_budget = 4000
    converge_target = 0.05  # noisy copies: the loss of a copy carries σ² of output noise

    def make_problem(self):
        return regression()
