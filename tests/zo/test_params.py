"""ModelParams: selection, masks, exact in-place restore, batched copies, updates, specs as JSON."""

import numpy as np
import pytest
import torch

from bbopt.params import ModelParams, stacked_copies
from bbopt.perturbations import Clean, Coordinate, Direction, NoisyCopy, Tangent, spec_from_json


def net(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 5)).to(dtype)
    with torch.no_grad():
        model[0].bias.mul_(1e-4)  # near-zero entries: the hard case for a ±ε round trip
    return model


def snapshot(space):
    return [p.detach().clone() for p in space.tensors]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_selection_forms():
    model = net()
    assert ModelParams(model).names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert ModelParams(model, "*.bias").names == ["0.bias", "2.bias"]
    assert ModelParams(model, ["2.*"]).names == ["2.weight", "2.bias"]
    assert ModelParams(model, lambda n, p: p.dim() == 2).names == ["0.weight", "2.weight"]
    assert ModelParams(model, exclude="0.*").names == ["2.weight", "2.bias"]
    model[0].weight.requires_grad_(False)  # default: trainable ones (e.g. a peft model's adapters)
    assert "0.weight" not in ModelParams(model).names
    assert "0.weight" in ModelParams(model, "all").names


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="chose no parameters"):
        ModelParams(net(), "*.nothing")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        ModelParams([1, 2])
    space = ModelParams(net())
    with pytest.raises(ValueError, match="bool tensor of shape"):
        space.set_mask({"0.bias": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="out of range"):
        space.validate([Coordinate(0, 9, 0, 0.1)])
    with pytest.raises(ValueError, match="noise"):
        space.validate([Direction(0, 1, 0.1, "cauchy")])
    with pytest.raises(ValueError, match="step"):
        space.validate([Clean(-1)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("noise", ["gaussian", "rademacher", "sphere"])
def test_in_place_perturbation_restores_bit_for_bit(dtype, noise):
    space = ModelParams(net(dtype), chunk_size=500, exact=True)  # several chunks per tensor
    before = snapshot(space)
    space.perturb(Direction(3, 12345, 1e-3, noise))
    assert not same(before, space.tensors)
    assert space.repair_bytes > 0  # floating point does not round-trip by itself here
    space.move_to(Direction(3, 12345, -1e-3, noise))  # fused: same seed, one noise pass
    space.move_to(Coordinate(3, 2, 7, 0.25))
    space.move_to(Direction(3, 999, 5e-2, noise))
    space.restore()
    assert same(before, space.tensors)


def test_restore_keeps_signed_zeros_and_nans_bit_for_bit():
    model = torch.nn.Linear(4, 3)
    with torch.no_grad():
        model.bias.copy_(torch.tensor([-0.0, float("nan"), 0.5]))
    space = ModelParams(model, exact=True)
    bits = model.bias.detach().clone().view(torch.int32)
    with space.perturbed(Direction(0, 3, 1e-3)):
        pass
    assert torch.equal(model.bias.detach().view(torch.int32), bits)


def test_arithmetic_round_trip_drifts_without_repairs():
    """exact=False is MeZO's plain ±ε round trip: it does not give the weights back in fp16."""
    space = ModelParams(net(torch.float16), exact=False)
    before = snapshot(space)
    for seed in range(5):
        with space.perturbed(Direction(0, seed, 1e-3)):
            pass
    assert not same(before, space.tensors)


def test_perturbation_is_the_scaled_noise_and_masked():
    space = ModelParams(net())
    before = snapshot(space)
    z = space.direction_tensors(7)
    with space.perturbed(Direction(0, 7, 0.01)):
        for p, b, zi in zip(space.tensors, before, z):
            torch.testing.assert_close(p - b, 0.01 * zi, atol=1e-6, rtol=0)
    mask = {"0.weight": torch.rand(30, 40) < 0.3}
    space.set_mask(mask)
    before = snapshot(space)  # the round trip above may have moved weights by an ulp (exact=False)
    with space.perturbed(Direction(0, 7, 0.01)):
        changed = space.tensors[0] != before[0]
        assert not (changed & ~mask["0.weight"]).any()
    assert space.dim == int(mask["0.weight"].sum()) + 30 + 150 + 5


def test_noise_statistics_and_regeneration():
    space = ModelParams(torch.nn.Linear(200, 100))
    z = torch.cat([t.reshape(-1) for t in space.direction_tensors(3)])
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    again = torch.cat([t.reshape(-1) for t in space.direction_tensors(3)])
    assert torch.equal(z, again)
    rad = torch.cat([t.reshape(-1) for t in space.direction_tensors(3, "rademacher")])
    assert set(rad.unique().tolist()) == {-1.0, 1.0}
    sphere = torch.cat([t.reshape(-1) for t in space.direction_tensors(3, "sphere")])
    assert float(sphere.norm()) == pytest.approx(np.sqrt(space.dim), rel=1e-5)


def test_stacked_copies_equal_the_in_place_values():
    space = ModelParams(net(), chunk_size=700, exact=True)  # every copy starts from the same θ
    specs = [Clean(0), Direction(0, 5, 1e-2), Coordinate(0, 2, 11, 0.3), Direction(0, 6, -1e-3, "rademacher")]
    stacked = stacked_copies(space, specs)
    for k, spec in enumerate(specs):
        with space.perturbed(spec):
            assert all(torch.equal(stacked[n][k], p) for n, p in zip(space.names, space.tensors))


def test_update_equals_the_evaluated_candidate():
    """θ ← θ + c·z lands exactly on the candidate θ + c·z (ZO-SGD-Cons relies on it)."""
    space = ModelParams(net())
    with space.perturbed(Direction(0, 21, -0.003)):
        candidate = snapshot(space)
    version = space.version
    space.add_([(21, -0.003, "gaussian")])
    assert same(candidate, space.tensors) and space.version == version + 1
    with space.perturbed(Direction(0, 1, 0.1)), pytest.raises(RuntimeError, match="perturbation is applied"):
        space.add_([(1, 0.1, "gaussian")])


def test_magnitude_and_random_masks():
    space = ModelParams(net())
    space.magnitude_mask(0.8)
    w, m = space.tensors[0].detach().abs(), space.masks[0]
    assert m.float().mean() == pytest.approx(0.2, abs=0.01)
    assert w[m].max() <= w[~m].min()  # keeps the small weights (Sparse MeZO)
    assert space.masks[1] is None  # biases stay whole
    space.random_mask(0.1, torch.Generator().manual_seed(0))
    assert space.masks[0].float().mean() == pytest.approx(0.1, abs=0.01)


def test_state_round_trip():
    space = ModelParams(net())
    state = space.state_dict()
    space.add_([(4, 1.0, "gaussian")])
    space.magnitude_mask(0.5)
    space.load_state_dict(state)
    assert same(state["tensors"], space.tensors) and all(m is None for m in space.masks)


def test_specs_as_json_and_sampling():
    space = ModelParams(net())
    specs = [Clean(1), Direction(2, 3, 0.1, "sphere"), Coordinate(3, 1, 4, 0.5), Tangent(4, 5, -1e-3),
             NoisyCopy(5, 6, 1, 4, 0.1, -1, True, True)]
    for s in specs:
        back = space.from_json(space.to_json(s))
        assert back.to_json() == s.to_json()
    with pytest.raises(ValueError, match="unknown fields"):
        spec_from_json({"kind": "clean", "step": 0, "x": 1})
    drawn = space.sample(np.random.default_rng(0), 3)
    assert len({s.seed for s in space.validate(drawn)}) == 3
    assert space.compact_candidates
    assert space.describe()["n_params"] == space.n_params == 40 * 30 + 30 + 30 * 5 + 5


def test_noise_layers_cover_linear_and_conv():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LayerNorm(4 * 6 * 6),
                                torch.nn.Linear(4 * 6 * 6, 3))
    space = ModelParams(model)
    layers = space.noise_layers()
    assert [name for name, *_ in layers] == ["0", "3"]
    assert [(w, b) for _, _, w, b in layers] == [(0, 1), (4, 5)]


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("sign", [False, True])
def test_a_deferred_restore_folds_into_the_update_with_the_same_bits(exact, sign):
    """Undoing the last direction inside the update's noise pass is exactly restore-then-update, so
    a run that restores first (a checkpoint taken in between) continues bit for bit."""
    spaces = [ModelParams(net(), chunk_size=700, exact=exact) for _ in range(2)]
    terms = [(41, -0.02, "gaussian"), (42, 0.5, "gaussian"), (43, 0.1, "gaussian")]
    for k, space in enumerate(spaces):
        space.perturb(Direction(0, 42, 1e-3))
        space.move_to(Direction(0, 42, -1e-3))
        space.restore(defer=k == 0)
        assert space.applied == (Direction(0, 42, -1e-3) if k == 0 else None)
        if sign:
            space.add_sign_(terms, 0.01, decay=1e-3)
        else:
            space.add_(terms, decay=1e-3)
        assert space.applied is None
    assert same(snapshot(spaces[0]), spaces[1].tensors)


def test_a_mezo_step_draws_the_noise_three_times():
    """+εz, −2εz, then the restore folded into the update: three noise passes per step, not four."""
    from bbopt import make_optimizer
    from bbopt.problems import TorchProblem

    model = net()
    problem = TorchProblem(model, lambda m, b: m(b[0]).square().mean(), [(torch.randn(8, 40),)], chunk_size=700,
                           mode="inplace")
    space = problem.space
    draws = []
    draw = space._noise.draw
    space._noise.draw = lambda *a, **k: draws.append(a[2]) or draw(*a, **k)
    opt = make_optimizer("mezo", space, seed=0, lr=1e-3)
    batch = opt.ask()
    opt.tell(batch, problem.evaluate(batch))
    assert len(draws) == 3 * space.n_chunks and space.applied is None
