"""FZOO: the paper's update transcribed, scale-free steps, σ = 0, options."""

import numpy as np
import pytest
import torch

from bbopt import make_optimizer
from bbopt.noise import NoiseStream
from bbopt.options import OptionError

from .toys import flat, loss_at, tiny_mlp


def fzoo_reference(problem, theta, seeds, step, lr, eps):
    """Dang et al. 2025: g = (1/Nε) Σ (lᵢ − l₀) uᵢ, θ ← θ − (lr/σ) g, σ the std of the N probe losses."""
    n = theta.numel()
    u = [NoiseStream("cpu").draw(s, 0, 0, n, "rademacher") for s in seeds]
    l0 = loss_at(problem, theta, step)
    losses = np.array([loss_at(problem, theta + eps * ui, step) for ui in u])
    sigma = losses.std(ddof=1)
    g = sum((li - l0) * ui for li, ui in zip(losses, u)) / (len(u) * eps)
    return theta - (lr / sigma) * g


@pytest.mark.parametrize("mode", ["inplace", "batched"])
def test_fzoo_follows_a_transcription_of_the_paper(mode):
    p = tiny_mlp(single_batch=False, mode=mode)
    theta = flat(p.space)
    opt = make_optimizer("fzoo", p.space, seed=0, lr=1e-3, eps=1e-2, q=6)
    for step in range(4):
        batch = opt.ask()
        assert len(batch) == 7  # one clean forward and six probes
        theta = fzoo_reference(p, theta, [s.seed for s in batch.x[1:]], step, 1e-3, 1e-2)
        opt.tell(batch, p.evaluate(batch))
    torch.testing.assert_close(flat(p.space), theta, rtol=1e-3, atol=1e-5)
    assert not torch.equal(flat(p.space), flat(tiny_mlp().space))


def test_the_step_does_not_depend_on_the_loss_scale():
    """Dividing by σ makes FZOO a normalised SGD: 10 × the loss gives the same steps."""
    a, b = tiny_mlp(), tiny_mlp()
    scaled = b.loss
    b.loss = lambda m, batch: 10.0 * scaled(m, batch)
    for p in (a, b):
        opt = make_optimizer("fzoo", p.space, seed=3, lr=1e-3, eps=1e-2, q=4)
        for _ in range(5):
            batch = opt.ask()
            opt.tell(batch, p.evaluate(batch))
    torch.testing.assert_close(flat(a.space), flat(b.space), rtol=1e-3, atol=1e-5)


def test_equal_probe_losses_make_no_step():
    p = tiny_mlp()
    opt = make_optimizer("fzoo", p.space, seed=0, q=3)
    before = flat(p.space)
    batch = opt.ask()
    opt.tell(batch, [1.0, 2.0, 2.0, 2.0])
    assert torch.equal(before, flat(p.space)) and opt.trajectory.records()[0]["status"] == "kept"


def test_options_are_checked():
    space = tiny_mlp().space
    with pytest.raises(OptionError, match="fzoo: q must be"):
        make_optimizer("fzoo", space, q=1)
    with pytest.raises(ValueError, match="direction"):
        make_optimizer("fzoo", space, direction="gaussian")  # FZOO's probes are Rademacher
