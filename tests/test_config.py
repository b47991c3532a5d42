"""Config files and ``--set`` values: YAML 1.2 numbers, strings kept as strings, renamed run keys."""

import json
from pathlib import Path

import pytest
import yaml

from bbopt.cli import main
from bbopt.config import ConfigError, apply_overrides, load_yaml, validate

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("text, value", [("1e-5", 1e-5), ("1E+3", 1000.0), ("-2.5e-3", -2.5e-3), (".5", 0.5),
                                         ("2e-1", 0.2), ("1.0e5", 1e5), ("+3e2", 300.0), ("5.", 5.0),
                                         ("10", 10), ("-7", -7), ("1_000", 1000)])
def test_numbers_follow_yaml_1_2(text, value, tmp_path):
    (tmp_path / "c.yaml").write_text(f"lr: {text}\n")
    for parsed in (apply_overrides({}, [f"lr={text}"])["lr"], load_yaml(tmp_path / "c.yaml")["lr"]):
        assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("text", ["'1e-5'", '"1E+3"', "e5", "1e", "1.2.3", "1e-5x", "runs/1e-5", "0.5.1", "NGOpt",
                                  "1e+", "-e3"])
def test_strings_stay_strings(text, tmp_path):
    (tmp_path / "c.yaml").write_text(f"out: {text}\n")
    assert isinstance(load_yaml(tmp_path / "c.yaml")["out"], str)
    assert isinstance(apply_overrides({}, [f"out={text}"])["out"], str)


def test_a_config_file_with_scientific_notation(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("problem: {name: sphere, dim: 3}\noptimizer: {name: cma, sigma0: 2e-1, cma_options: "
                    "{tolfun: 1E-12}}\nbudget: 200\ntarget_gap: 1e-8\nout: 'runs/1e-8'\n"
                    "description: {note: 1e5 runs}\n")
    config = validate(load_yaml(path))
    assert config["optimizer"]["sigma0"] == 0.2 and config["optimizer"]["cma_options"]["tolfun"] == 1e-12
    assert config["target_gap"] == 1e-8 and config["out"] == "runs/1e-8"
    assert config["description"] == {"note": "1e5 runs"}


def test_solve_accepts_scientific_notation_in_set(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["solve", str(ROOT / "problems" / "quickstart.yaml"), "--set", "target_gap=1e-8",
                 "--set", "optimizer.sigma0=2e-1", "--set", "budget=2E+2", "--out", str(out)]) == 2
    assert "budget: must be an integer" in capsys.readouterr().err  # 2E+2 is a float, as in YAML 1.2
    assert main(["solve", str(ROOT / "problems" / "quickstart.yaml"), "--set", "target_gap=1e-8",
                 "--set", "optimizer.sigma0=2e-1", "--set", "budget=200", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_evals"] <= 200
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["target_gap"] == 1e-8 and resolved["optimizer"]["sigma0"] == 0.2


def test_the_old_run_key_batch_size_points_at_round_size():
    with pytest.raises(ConfigError, match="^batch_size: is now called 'round_size'"):
        validate({"problem": "sphere", "optimizer": "cma", "budget": 10, "batch_size": 3})
    assert validate({"problem": "sphere", "optimizer": "cma", "budget": 10, "round_size": 3})["round_size"] == 3
