"""LOZO / LOZO-M / SubZero: low-rank directions, lazy subspaces, the papers' updates transcribed."""

import pytest
import torch

from bbopt import make_optimizer
from bbopt.options import OptionError

from .toys import flat, loss_at, tiny_mlp


def direction(space, seed, kind):
    """The whole direction z as a flat vector, drawn through bbopt's own noise function."""
    return space.delta(seed, kind, 0, 1.0)


def weight_block(space, z, ti):
    a, b = space.layout.offsets[ti], space.layout.offsets[ti + 1]
    return z[a:b].view(space.tensors[ti].shape[0], -1)


@pytest.mark.parametrize("name", ["lozo", "subzero"])
def test_directions_are_low_rank_and_the_subspace_is_kept(name):
    p = tiny_mlp()
    opt = make_optimizer(name, p.space, seed=0, rank=2, subspace_every=3)
    rows = []
    for _ in range(4):
        batch = opt.ask()
        z = direction(p.space, batch.x[0].seed, opt.direction)
        w = weight_block(p.space, z, 0)  # 8 × 64
        assert torch.linalg.matrix_rank(w) == 2
        rows.append(torch.linalg.svd(w.T)[0][:, :2])  # a basis of its row space (n × r)
        opt.tell(batch, p.evaluate(batch))
    same = [float(torch.linalg.matrix_norm(rows[0].T @ r)) ** 2 for r in rows[1:]]
    assert same[0] == pytest.approx(2.0, abs=1e-4) and same[1] == pytest.approx(2.0, abs=1e-4)
    assert same[2] < 1.9  # step 3: a new subspace
    mean_square = torch.stack([direction(p.space, s << 31 | s, opt.direction).square().mean() for s in range(200)])
    assert float(mean_square.mean()) == pytest.approx(1.0, abs=0.1)  # unit mean square, like Gaussian z


@pytest.mark.parametrize("name", ["lozo", "subzero"])
def test_the_step_follows_a_transcription(name):
    """θ ± εZ, c = (L₊ − L₋)/2ε, θ ← θ − lr·c·Z (LOZO's ĝ = c·UVᵀ/r with its ε = eps/√r)."""
    lr, eps = 0.05, 1e-2
    p = tiny_mlp()
    theta = flat(p.space)
    opt = make_optimizer(name, p.space, seed=1, lr=lr, eps=eps, subspace_every=2)
    for step in range(4):
        batch = opt.ask()
        z = direction(p.space, batch.x[0].seed, opt.direction)
        c = (loss_at(p, theta + eps * z, step) - loss_at(p, theta - eps * z, step)) / (2 * eps)
        theta = theta - lr * c * z
        opt.tell(batch, p.evaluate(batch))
    torch.testing.assert_close(flat(p.space), theta, rtol=1e-3, atol=1e-5)


def test_lozo_m_follows_a_transcription_with_subspace_changes():
    """N ← βN + (1−β)·c·U/√r per weight, W ← W − lr·N Vᵀ; N ← N V_oldᵀ V_new / n when V changes;
    0-/1-D tensors: heavy-ball on c·z."""
    lr, eps, beta = 0.05, 1e-2, 0.8
    p = tiny_mlp()
    space = p.space
    theta = flat(space)
    opt = make_optimizer("lozo", space, seed=2, lr=lr, eps=eps, rule="momentum", momentum=beta, subspace_every=2)
    n_buf, v_old, m1 = {}, {}, {}
    for step in range(5):
        batch = opt.ask()
        seed = batch.x[0].seed
        z = direction(space, seed, opt.direction)
        c = (loss_at(p, theta + eps * z, step) - loss_at(p, theta - eps * z, step)) / (2 * eps)
        parts = space.lowrank_factors(seed, opt.direction)
        new = theta.clone()
        for ti, part in enumerate(parts):
            a, b = space.layout.offsets[ti], space.layout.offsets[ti + 1]
            if part is None:
                m1[ti] = beta * m1.get(ti, 0) + (1 - beta) * c * z[a:b]
                new[a:b] -= lr * m1[ti]
                continue
            left, right = part
            if ti in n_buf and not torch.equal(v_old[ti], right):
                n_buf[ti] = n_buf[ti] @ (v_old[ti].T @ right) / right.shape[0]
            n_buf[ti] = beta * n_buf.get(ti, 0) + (1 - beta) * c * left
            v_old[ti] = right
            new[a:b] -= lr * (n_buf[ti] @ right.T).reshape(-1)
        theta = new
        opt.tell(batch, p.evaluate(batch))
    torch.testing.assert_close(flat(space), theta, rtol=1e-3, atol=1e-5)


def test_options_are_checked():
    space = tiny_mlp().space
    with pytest.raises(OptionError, match="lozo: rank must be"):
        make_optimizer("lozo", space, rank=0)
    with pytest.raises(OptionError, match="lozo: momentum is not used"):
        make_optimizer("lozo", space, momentum=0.9)
    with pytest.raises(OptionError, match="subzero: momentum is not used"):
        make_optimizer("subzero", space, momentum=0.9)
    with pytest.raises(OptionError, match="rule"):
        make_optimizer("subzero", space, rule="sign")
