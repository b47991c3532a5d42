"""Likelihood ratio (ULR): estimates vs autograd, variance reduction, layer-wise, 0-1 loss, conformance."""

import numpy as np
import pytest
import torch

from bbopt import make_optimizer, minimize
from bbopt.options import OptionError
from bbopt.problems import TorchProblem
from bbopt.testing import OptimizerConformance

from .test_mezo import cosine, estimates
from .toys import autograd_grad, error_rate, flat, mse, regression, tiny_mlp


def test_mean_estimate_matches_autograd():
    p = tiny_mlp(single_batch=True)
    g = autograd_grad(p)
    mean = estimates(p, "likelihood-ratio", 60, lr=0.1, eps=0.05, q=8).mean(0)
    assert cosine(mean, g) > 0.95
    assert float(mean.norm() / g.norm()) == pytest.approx(1.0, abs=0.15)


def _linear_regression_on_one_batch() -> TorchProblem:
    """y = Wx + b under squared error: with noise ε on the outputs, E_ε[L] = L + const, so the
    gradient the estimator is unbiased for equals the noiseless autograd gradient exactly."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 8, generator=g)
    y = X @ torch.randn(8, 2, generator=g)
    model = torch.nn.Sequential(torch.nn.Linear(8, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return TorchProblem(model, mse, [(X, y)])


@pytest.mark.parametrize("options", [{"q": 8}, {"q": 2}, {"q": 8, "antithetic": False}], ids=str)
def test_the_mean_of_many_estimates_is_the_gradient_within_its_standard_error(options):
    """Unbiased, not off by copies/(copies − 1) (a leave-one-out baseline over antithetic partners)."""
    p = _linear_regression_on_one_batch()
    g = autograd_grad(p)
    est = estimates(p, "likelihood-ratio", 300, lr=0.1, eps=0.1, **options)
    ratio = (est @ g) / (g @ g)  # the estimate's length along the true gradient, per step
    se = float(ratio.std()) / len(ratio) ** 0.5
    assert abs(float(ratio.mean()) - 1.0) < 4 * se
    assert se < 0.02  # fine enough to see a bias of 1/15 (16 copies) or more
    per_coordinate = (est.mean(0) - g).abs() / (est.std(0) / len(est) ** 0.5)
    assert float(per_coordinate.max()) < 4.5


def test_antithetic_pairs_and_baseline_cut_the_variance():
    """At equal FE (8 noisy copies): ± pairs, leave-one-out baseline, neither."""
    p = tiny_mlp(single_batch=True)
    g2 = float(autograd_grad(p).square().sum())
    var = {}
    for key, opts in {"pairs": {"q": 4}, "baseline": {"q": 8, "antithetic": False},
                      "plain": {"q": 8, "antithetic": False, "baseline": False}}.items():
        est = estimates(p, "likelihood-ratio", 40, lr=0.1, **opts)
        var[key] = float(est.var(0).sum()) / g2
    assert var["pairs"] * 20 < var["plain"] and var["baseline"] * 5 < var["plain"]


def test_layerwise_groups_cover_one_layer_each():
    p = tiny_mlp(single_batch=True)
    opt = make_optimizer("likelihood-ratio", p.space, seed=0, lr=0.1, q=2, layerwise=True)
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
    minimize(p, "likelihood-ratio", 1600, seed=0, options={"lr": 0.2, "q": 8}, progress=False)
    assert p.mean_loss(test, error_rate) < 0.5 * start
    q = tiny_mlp(hidden=16)
    q.loss = error_rate  # non-differentiable: only per-example values are used
    minimize(q, "likelihood-ratio", 1600, seed=0, options={"lr": 0.05, "q": 8, "eps": 0.5}, progress=False)
    assert q.mean_loss(test, error_rate) < 0.85 * start


def test_descends_on_average():
    p = tiny_mlp(single_batch=True)
    opt = make_optimizer("likelihood-ratio", p.space, seed=0, lr=1e-3, q=8)
    total = 0.0
    for _ in range(5):
        before, g = flat(p.space), autograd_grad(p)
        batch = opt.ask()
        opt.tell(batch, p.evaluate(batch))
        total += float((flat(p.space) - before) @ g)
    assert total < 0


def test_needs_the_attached_estimate():
    p = tiny_mlp()
    opt = make_optimizer("likelihood-ratio", p.space, seed=0, q=2)
    batch = opt.ask()
    with pytest.raises(RuntimeError, match="in this process"):
        opt.tell(batch, np.ones(len(batch)))


def test_options_are_checked():
    space = tiny_mlp().space
    with pytest.raises(OptionError, match="likelihood-ratio: baseline is not used with antithetic=True"):
        make_optimizer("likelihood-ratio", space, baseline=False)
    with pytest.raises(OptionError, match="q must be an integer in \\[2"):
        make_optimizer("likelihood-ratio", space, q=1, antithetic=False)
    with pytest.raises(OptionError, match="now called 'q'"):
        make_optimizer("likelihood-ratio", space, copies=16)
    with pytest.raises(OptionError, match="now called 'eps'"):
        make_optimizer("likelihood-ratio", space, sigma=0.1)
    with pytest.raises(OptionError, match="dense"):
        make_optimizer("likelihood-ratio", space, rule="momentum")
    emb = torch.nn.Sequential(torch.nn.Embedding(5, 3))
    from bbopt.params import ModelParams
    with pytest.raises(ValueError, match="no Linear"):
        make_optimizer("likelihood-ratio", ModelParams(emb))


class TestLikelihoodRatioConformance(OptimizerConformance):
    name = "likelihood-ratio"
    options = {"lr": 0.02, "q": 4}
    converge_budget = 4000
    converge_target = 0.05  # noisy copies: the loss of a copy carries σ² of output noise

    def make_problem(self):
        return regression()
