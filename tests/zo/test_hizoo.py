"""HiZOO: the paper's update transcribed, α = 0 is MeZO, Σ scales every direction, options."""

import pytest
import torch

from bbopt import make_optimizer
from bbopt.noise import NoiseStream
from bbopt.options import OptionError

from .toys import flat, loss_at, tiny_mlp


@pytest.mark.parametrize("mode", ["inplace", "batched"])
def test_hizoo_follows_a_transcription_of_the_paper(mode):
    """Zhao et al. 2024, Algorithm 1 with D = Σ⁻¹: θ ± εΣ^{1/2}z, D ← (1−α)D + α·|L₊+L₋−2L₀|/(2ε²)·z²·D,
    θ ← θ − lr·(L₊−L₋)/(2ε)·Σ^{1/2}z with the updated Σ."""
    lr, eps, alpha = 0.02, 1e-2, 0.05
    p = tiny_mlp(mode=mode)
    theta = flat(p.space).double()
    d = torch.ones_like(theta)
    opt = make_optimizer("hizoo", p.space, seed=0, lr=lr, eps=eps, hessian_smooth=alpha)
    for step in range(5):
        batch = opt.ask()
        seed = batch.x[1].seed
        z = NoiseStream("cpu").draw(seed, 0, 0, theta.numel(), "gaussian").double()
        u = z / d.sqrt()
        l0, lp, lm = (loss_at(p, (theta + s * eps * u).float(), step) for s in (0, 1, -1))
        d = (1 - alpha) * d + alpha * abs(lp + lm - 2 * l0) / (2 * eps ** 2) * z ** 2 * d
        theta = theta - lr * (lp - lm) / (2 * eps) * z / d.sqrt()
        opt.tell(batch, p.evaluate(batch))
    assert float((d - 1).abs().max()) > 0.1  # the preconditioner moved away from MeZO's identity
    torch.testing.assert_close(flat(p.space).double(), theta, rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(opt.sqrt_sigma.double(), 1 / d.sqrt(), rtol=1e-3, atol=1e-6)


def test_without_curvature_updates_hizoo_is_mezo():
    a, b = tiny_mlp(), tiny_mlp()
    hizoo = make_optimizer("hizoo", a.space, seed=4, lr=0.01, hessian_smooth=0.0)
    mezo = make_optimizer("mezo", b.space, seed=4, lr=0.01)
    for opt, p in ((hizoo, a), (mezo, b)):
        for _ in range(6):
            batch = opt.ask()
            opt.tell(batch, p.evaluate(batch))
    torch.testing.assert_close(flat(a.space), flat(b.space), rtol=1e-5, atol=1e-7)


def test_sigma_is_one_buffer_the_size_of_the_weights():
    p = tiny_mlp()
    opt = make_optimizer("hizoo", p.space, seed=0)
    assert opt.sqrt_sigma.shape == (p.space.n_params,) and p.space.noise_scale is opt.sqrt_sigma


def test_options_are_checked():
    space = tiny_mlp().space
    with pytest.raises(OptionError, match="hizoo: hessian_smooth must be"):
        make_optimizer("hizoo", space, hessian_smooth=2.0)
    with pytest.raises(OptionError, match="rule"):
        make_optimizer("hizoo", space, rule="sign")
    opt = make_optimizer("hizoo", space, seed=0)
    with pytest.raises(ValueError, match="Σ"):
        opt.reconstruct(tiny_mlp().space)
