"""Update rules: each rule's own options are refused with any other rule; one algorithm per name."""

from pathlib import Path

import pytest
import torch

from bbopt import make_optimizer
from bbopt.cli import main
from bbopt.options import OptionError
from bbopt.strategies.zo.rules import DenseEstimate, SeedEstimate, make_rule, rule_options, seed_tensor

from .toys import flat, regression, tiny_mlp

ROOT = Path(__file__).resolve().parents[2]
ESTIMATORS = ["mezo", "forward-gradient", "cge", "likelihood-ratio"]


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("option, value, rule", [
    ("momentum", 0.9, "sgd"), ("window", 5, "sign"), ("torch_optimizer", "sgd", "sgd"),
    ("torch_options", {"momentum": 0.9}, "sign")])
def test_an_option_the_chosen_rule_does_not_use_is_refused(name, option, value, rule):
    space = tiny_mlp().space
    if option in ("momentum", "window") and name in ("cge", "likelihood-ratio"):
        with pytest.raises(OptionError, match="no option"):  # dense estimators have no momentum rule at all
            make_optimizer(name, space, **{option: value})
        return
    with pytest.raises(OptionError, match=f"{name}: {option} is not used with rule='{rule}'") as err:
        make_optimizer(name, space, rule=rule, **{option: value})
    assert err.value.option == option


def test_momentum_and_torch_options_are_used_by_their_rules():
    space = regression().space
    assert make_optimizer("mezo", space, rule="momentum", momentum=0.5, window=3).rule.beta == 0.5
    opt = make_optimizer("mezo", space, rule="torch", torch_optimizer="sgd", torch_options={"momentum": 0.7})
    assert isinstance(opt.rule.opt, torch.optim.SGD) and opt.rule.opt.param_groups[0]["momentum"] == 0.7
    for name in ESTIMATORS:  # one default everywhere
        assert type(make_optimizer(name, tiny_mlp().space, rule="torch").rule.opt) is torch.optim.Adam
    with pytest.raises(OptionError, match="momentum must be a number in \\[0"):
        make_optimizer("mezo", space, rule="momentum", momentum=1.0)
    with pytest.raises(OptionError, match="torch_options for torch.optim.Adam"):
        make_optimizer("mezo", space, rule="torch", torch_options={"nesterov": True})


def test_a_yaml_option_unused_by_the_rule_exits_2_naming_it(tmp_path, capsys):
    path = ROOT / "problems" / "zo_digits_mlp_mezo.yaml"
    assert main(["solve", str(path), "--out", str(tmp_path / "r"), "--set", "optimizer.momentum=0.9"]) == 2
    err = capsys.readouterr().err
    assert "optimizer.momentum" in err and "rule='momentum'" in err


def test_sign_is_one_algorithm_for_seed_and_dense_estimates():
    """sign(ĝ) per coordinate: a seed estimate and the same estimate materialised move θ identically."""
    seed_space, dense_space = regression().space, regression().space
    estimate = SeedEstimate([11, 12, 13], [0.5, -2.0, 1.0], "gaussian")
    options = rule_options("test", "sign", ("sign",), None, None, None, None)
    dense = DenseEstimate({i: seed_tensor(dense_space, estimate, i) for i in range(len(dense_space.tensors))})
    make_rule("sign", seed_space, options, 0.1, 0.0, "test").step(estimate, 0.1, 0.0)
    before = flat(dense_space)
    make_rule("sign", dense_space, options, 0.1, 0.0, "test").step(dense, 0.1, 0.0)
    assert torch.equal(flat(seed_space), flat(dense_space))
    step = flat(dense_space) - before
    expected = -0.1 * torch.cat([g.reshape(-1) for g in dense.grads.values()]).sign()
    assert torch.allclose(step, expected, atol=1e-6)
    assert (step.abs() > 0.099).all()  # every coordinate moves by lr, whatever |ĝ_i|
