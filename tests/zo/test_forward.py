"""Forward gradient: exact directional derivatives, unbiasedness, variance, direction, conformance."""

import pytest
import torch

from bbopt import make_optimizer, minimize
from bbopt.testing import OptimizerConformance

from .test_mezo import cosine, estimates
from .toys import autograd_grad, flat, quadratic, regression, tiny_mlp


def test_each_estimate_is_the_exact_directional_derivative_times_z():
    p = tiny_mlp(single_batch=True)
    g = autograd_grad(p)
    opt = make_optimizer("forward-gradient", p.space, seed=0, lr=1e-9)
    batch = opt.ask()
    opt.tell(batch, p.evaluate(batch))
    record = opt.trajectory.records()[0]
    z = torch.cat([t.reshape(-1) for t in p.space.direction_tensors(record["seeds"][0])])
    assert record["g"][0] == pytest.approx(float(g @ z), rel=1e-4)


def test_mean_estimate_matches_autograd():
    p = quadratic(20)
    mean = estimates(p, "forward-gradient", 500, lr=1e-3).mean(0)
    g = autograd_grad(p)
    assert cosine(mean, g) > 0.95
    assert float(mean.norm() / g.norm()) == pytest.approx(1.0, abs=0.2)


@pytest.mark.parametrize("d", [10, 80])
def test_rademacher_second_moment_is_d_times_the_gradient_norm(d):
    """‖z‖² = d exactly and E(zᵀg)² = ‖g‖², so E‖ĝ‖² = d‖g‖²."""
    p = quadratic(d)
    g2 = float(autograd_grad(p).square().sum())
    moment = float(estimates(p, "forward-gradient", 300, lr=1e-3, direction="rademacher").square().sum(1).mean())
    assert moment / g2 / d == pytest.approx(1.0, abs=0.25)


@pytest.mark.parametrize("options", [{}, {"rule": "momentum", "window": 3}, {"q": 2}], ids=str)
def test_every_step_moves_downhill(options):
    p = quadratic(12)
    opt = make_optimizer("forward-gradient", p.space, seed=3, lr=1e-3, **options)
    for _ in range(8):
        before, g = flat(p.space), autograd_grad(p)
        batch = opt.ask()
        opt.tell(batch, p.evaluate(batch))
        assert float((flat(p.space) - before) @ g) <= 1e-9


def test_forward_ad_and_func_jvp_train_identically():
    a, b = regression(), regression(jvp="forward_ad")
    minimize(a, "forward-gradient", 60, seed=0, options={"lr": 0.02}, progress=False)
    minimize(b, "forward-gradient", 60, seed=0, options={"lr": 0.02}, progress=False)
    torch.testing.assert_close(flat(a.space), flat(b.space), rtol=1e-5, atol=1e-6)
    start = regression()
    assert a.mean_loss([a.batch(t) for t in range(8)]) < 0.5 * start.mean_loss([start.batch(t) for t in range(8)])


def test_options_are_checked():
    space = regression().space
    with pytest.raises(ValueError, match="forward-gradient: direction"):
        make_optimizer("forward-gradient", space, direction="sphere")
    with pytest.raises(ValueError, match="forward-gradient: eps"):
        make_optimizer("forward-gradient", space, eps=0)


class TestForwardGradientConformance(OptimizerConformance):
    """Candidate values are the first-order model L ± h·∇L·z (documented), close to true losses."""

    name = "forward-gradient"
    options = {"lr": 0.02}
    converge_budget = 1500

    def make_problem(self):
        return regression(jvp="forward_ad")
