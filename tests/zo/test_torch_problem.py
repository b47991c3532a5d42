"""TorchProblem: in-place vs batched evaluation, purity, data by step, probes, saving."""

import numpy as np
import pytest
import torch

from bbopt.batch import Batch
from bbopt.perturbations import Clean, Coordinate, Direction, NoisyCopy, Tangent
from bbopt.problems import TorchProblem
from bbopt.problems.torch_data import BatchCycle, ShuffledBatches

from .toys import autograd_grad, error_rate, flat, quadratic, regression, tiny_mlp


def specs_for(step=0):
    return [Clean(step), Direction(step, 11, 1e-2), Direction(step, 11, -1e-2), Coordinate(step, 0, 5, 0.1),
            Coordinate(step, 2, 3, -0.2), Direction(step, 12, 3e-2, "rademacher")]


def test_in_place_and_batched_agree_and_give_the_model_back():
    a, b = tiny_mlp(mode="inplace", exact=True), tiny_mlp(mode="batched")
    before = flat(a.space)
    la, lb = a.evaluate(specs_for()), b.evaluate(specs_for())
    np.testing.assert_allclose(la, lb, rtol=1e-5)
    # the last direction stays applied: the step's update undoes it in its own noise pass
    assert a.space.applied == specs_for()[-1]
    a.space.restore()
    assert a.space.applied is None
    assert torch.equal(before, flat(a.space)) and torch.equal(before, flat(b.space))
    assert np.array_equal(la, a.evaluate(specs_for()))  # a pure function of (parameters, spec)
    default = tiny_mlp(mode="inplace")  # MeZO's arithmetic round trip: back to within rounding
    default.evaluate(specs_for())
    default.space.restore()
    torch.testing.assert_close(flat(default.space), before, rtol=1e-6, atol=1e-7)


def test_feature_reuse_matches_full_forward():
    with_reuse, without = tiny_mlp(mode="batched"), tiny_mlp(mode="batched", feature_reuse=False)
    specs = [Clean(2)] + [Coordinate(2, t, i, 5e-3) for t in range(4) for i in (0, 3)]
    np.testing.assert_allclose(with_reuse.evaluate(specs), without.evaluate(specs), rtol=1e-5)
    # coordinates evaluated without their clean point rebuild the cache themselves
    np.testing.assert_allclose(with_reuse.evaluate(specs[1:]), without.evaluate(specs[1:]), rtol=1e-5)


def test_candidates_use_their_steps_batch():
    p = regression()
    data = p.data
    assert torch.equal(p.batch(3)[0], data[3][0])
    losses = p.evaluate([Clean(0), Clean(1), Clean(0)])
    assert losses[0] == losses[2] != losses[1]
    assert p.evaluate(Batch([0], [Clean(1)]))[0] == losses[1]


def test_shuffled_batches_are_a_pure_function_of_the_step():
    X = torch.arange(20.0)[:, None]
    a, b = ShuffledBatches([X], 6, seed=3), ShuffledBatches([X], 6, seed=3)
    assert len(a) == 3
    epoch0 = torch.cat([a[t][0] for t in range(3)]).view(-1)
    assert len(set(epoch0.tolist())) == 18  # a permutation, last partial batch dropped
    assert torch.equal(a[4][0], b[4][0]) and not torch.equal(a[1][0], a[4][0])
    with pytest.raises(ValueError, match="batch_size"):
        ShuffledBatches([X], 50)


def test_streamed_data_is_cycled_and_replayed():
    stream = BatchCycle(iter_like := _Reiterable([1, 2, 3]))
    assert [stream(t) for t in range(7)] == [1, 2, 3, 1, 2, 3, 1]
    assert stream(1) == 2  # an earlier step restarts the stream
    assert iter_like.iterations >= 3
    with pytest.raises(TypeError, match="re-iterable"):
        BatchCycle(5)


class _Reiterable:
    def __init__(self, items):
        self.items, self.iterations = items, 0

    def __iter__(self):
        self.iterations += 1
        return iter(self.items)


def test_non_differentiable_loss_works_in_place_and_batched():
    for mode in ("inplace", "batched"):
        p = tiny_mlp(mode=mode)
        p.loss = error_rate
        p._jvp.loss = error_rate
        values = p.evaluate(specs_for())
        assert np.all((values >= 0) & (values <= 1))


def test_batched_falls_back_when_the_loss_does_not_vmap():
    p = tiny_mlp(mode="auto")
    p.loss = lambda m, b: torch.tensor(float(m(b[0]).sum().item()))  # .item() cannot be vmapped
    with pytest.warns(RuntimeWarning, match="in place"):
        values = p.evaluate(specs_for())
    assert np.isfinite(values).all() and p._vmap_ok is False


def test_tangent_values_give_the_exact_directional_derivative():
    p = quadratic(30)
    h = 1e-3
    plus, minus = p.evaluate([Tangent(0, 4, h), Tangent(0, 4, -h)])
    z = torch.cat([t.reshape(-1) for t in p.space.direction_tensors(4)])
    assert (plus - minus) / (2 * h) == pytest.approx(float(autograd_grad(p) @ z), rel=1e-4)
    base = p.evaluate([Clean(0)])[0]
    assert (plus + minus) / 2 == pytest.approx(base, rel=1e-6)


def test_forward_ad_fallback_gives_the_same_derivative():
    p = quadratic(30)
    jvp_values = p.evaluate([Tangent(0, 4, 1e-3)])
    p._jvp.use_forward_ad = True
    np.testing.assert_allclose(p.evaluate([Tangent(0, 4, 1e-3)]), jvp_values, rtol=1e-6)


def test_noisy_copies_attach_sums_and_need_per_example_losses():
    p = tiny_mlp()
    specs = [NoisyCopy(0, 9, k, 4, 0.1, -1, True, True) for k in range(4)]
    values = p.evaluate(specs)
    assert values.shape == (4,) and np.isfinite(values).all()
    out = specs[0].out
    assert out["rows"] == 4 * 32 and sorted(out["sums"]) == [0, 1, 2, 3]
    assert out["sums"][0].shape == p.space.tensors[0].shape
    assert all(s.out is None for s in specs[1:])
    p.loss = lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1])  # a scalar: not enough
    with pytest.raises(ValueError, match="per-example"):
        p.evaluate([NoisyCopy(0, 9, k, 2, 0.1, -1, True, True) for k in range(2)])


def test_save_and_load_round_trip(tmp_path):
    p = tiny_mlp()
    path = p.save(tmp_path / "model.safetensors")
    before = flat(p.space)
    p.space.add_([(3, 0.1, "gaussian")])
    p.load(path)
    assert torch.equal(before, flat(p.space))
    sub = p.save(tmp_path / "sub.safetensors", selected_only=True)
    p.load(sub)
    assert torch.equal(before, flat(p.space))


def test_mean_loss_and_options():
    p = regression()
    assert p.mean_loss([p.batch(0), p.batch(1)]) > 0
    with pytest.raises(ValueError, match="mode"):
        regression(mode="fast")
    with pytest.raises(ValueError, match="device"):
        regression(device="tpu")
    assert regression(device="auto").device.type in ("cpu", "cuda")
    with pytest.raises(TypeError, match="loss"):
        TorchProblem(torch.nn.Linear(2, 2), None, [(torch.zeros(1, 2),)])
