"""The option checks every strategy and problem share, and problem-recommended options."""

import numpy as np
import pytest

from bbopt import Box, minimize
from bbopt.config import ConfigError, build, validate
from bbopt.optimizer import run_defaults
from bbopt.options import (
    OptionError,
    check_options,
    integer,
    merge_recommended,
    nonnegative,
    number_in,
    one_of,
    positive,
)
from bbopt.problem import FunctionProblem


def test_checks_name_owner_and_option():
    with pytest.raises(OptionError, match=r"^mezo: eps must be a positive number, got 0") as err:
        positive(0, "eps", "mezo")
    assert err.value.option == "eps"
    assert positive(3, "q", "mezo", integer=True) == 3
    with pytest.raises(OptionError, match="positive integer"):
        positive(2.5, "q", "mezo", integer=True)
    with pytest.raises(OptionError):
        positive(True, "q")
    with pytest.raises(OptionError):
        positive(float("inf"), "lr")
    assert nonnegative(0, "weight_decay") == 0.0
    with pytest.raises(OptionError, match=r"in \[1, 5\]"):
        integer(6, "degree", "chebcb", minimum=1, maximum=5)
    assert number_in(0.5, "density", "cge", 0, 1, low_open=True) == 0.5
    with pytest.raises(OptionError, match=r"\(0, 1\]"):
        number_in(0.0, "density", "cge", 0, 1, low_open=True)
    with pytest.raises(OptionError, match="did you mean 'gaussian'"):
        one_of("gausian", "direction", "mezo", ("gaussian", "rademacher"))
    with pytest.raises(OptionError):
        one_of(0, "flag", "x", (False, True))


def test_renamed_option_suggests_the_new_name():
    class Strategy:
        renamed_options = {"mu": "eps"}

        def __init__(self, space, seed=None, eps=1e-3):
            pass

    with pytest.raises(OptionError, match="now called 'eps'") as err:
        check_options(Strategy, {"mu": 0.1}, "optimizer 'x'")
    assert err.value.option == "mu"
    with pytest.raises(OptionError, match="did you mean 'eps'"):
        check_options(Strategy, {"epz": 0.1}, "optimizer 'x'")


def test_merge_recommended_is_key_by_key_and_nested():
    rec = {"sigma0": 1.0, "popsize": 20, "inner_options": {"sigma0": 0.2, "popsize": 20}}
    out = merge_recommended(rec, {"popsize": 10, "inner_options": {"popsize": 8}})
    assert out == {"sigma0": 1.0, "popsize": 10, "inner_options": {"sigma0": 0.2, "popsize": 8}}
    assert rec["inner_options"]["popsize"] == 20  # not mutated


class _Declares(FunctionProblem):
    def recommended_options(self, optimizer):
        return {"sigma0": 0.05, "popsize": 6} if optimizer == "cma" else {}


def _problem():
    return _Declares(lambda x: float(np.sum((x - 0.3) ** 2)), Box(-1, 1, dim=3))


def test_run_applies_recommended_options_under_the_users():
    problem = _problem()
    assert run_defaults("cma", {}, problem, 100)["sigma0"] == 0.05
    assert run_defaults("cma", {"sigma0": 0.5}, problem, 100)["sigma0"] == 0.5
    assert "sigma0" not in run_defaults("random", {}, problem, 100)
    result = minimize(problem, "cma", 12, seed=0)
    assert result.n_rounds == 2  # two generations of the recommended popsize 6


def test_resolved_config_shows_recommended_options(monkeypatch):
    import bbopt.problems as registry

    monkeypatch.setitem(registry.PROBLEMS, "declares-test", ("tests.test_options:_problem", "test"))
    config = validate({"problem": "declares-test", "optimizer": {"name": "cma", "popsize": 4}, "budget": 8,
                       "seed": 0})
    build(config)
    assert config["optimizer"] == {"name": "cma", "sigma0": 0.05, "popsize": 4}
    bad = validate({"problem": "declares-test", "optimizer": {"name": "cma", "sigma0": -1}, "budget": 8, "seed": 0})
    with pytest.raises(ConfigError, match="^optimizer"):
        build(bad)


def test_class_level_recommendations_reach_minimize_the_resolved_config_and_bbopt_list(tmp_path, capsys):
    import json

    import yaml

    from bbopt.cli import main
    from bbopt.problems import describe

    from objectives import Recommends

    assert minimize(Recommends(dim=4), "cma", 12, seed=0).n_rounds == 2  # λ = 6
    nested = run_defaults("block", {"inner_options": {"popsize": 4}}, Recommends(dim=4), 100)
    assert nested["inner_options"] == {"sigma0": 0.05, "popsize": 4} and nested["n_blocks"] == 2
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"problem": {"name": "objectives:Recommends", "dim": 4},
                                    "optimizer": {"name": "block", "inner_options": {"popsize": 4}},
                                    "budget": 16, "seed": 0}))
    assert main(["solve", str(path), "--set", "optimizer.inner_options.sigma0=1e-1",
                 "--out", str(tmp_path / "run"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_evals"] == 16
    resolved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert resolved["optimizer"] == {"name": "block", "n_blocks": 2, "inner_options": {"sigma0": 0.1, "popsize": 4}}
    assert main(["list", "--problem", "objectives:Recommends"]) == 0
    shown = capsys.readouterr().out
    assert 'recommended for optimizer cma: {"sigma0": 0.05, "popsize": 6}' in shown and "dim=3" in shown
    assert describe("objectives:Recommends")["recommended_from_arguments"] is False
    assert describe("tests.test_options:_Declares")["recommended_from_arguments"] is True
