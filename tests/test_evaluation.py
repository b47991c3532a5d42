"""Evaluation in or out of process: a problem whose evaluations change its state keeps one state."""

import json
from pathlib import Path

import pytest
import yaml

from bbopt import minimize
from bbopt.cli import main
from bbopt.evaluation import Evaluator
from bbopt.options import OptionError

from objectives import Stream

ROOT = Path(__file__).resolve().parent.parent


def test_a_side_effect_problem_runs_in_process_and_its_state_advances():
    problem = Stream()
    result = minimize(problem, "random", 20, seed=0, options={"popsize": 4})
    assert result.n_evals == 20 and problem.step == 5


@pytest.mark.parametrize("option, value", [("n_jobs", 2), ("n_jobs", -1), ("eval_timeout", 30.0),
                                           ("executor", object())])
def test_minimize_refuses_workers_for_a_side_effect_problem_naming_the_option(option, value):
    problem = Stream()
    with pytest.raises(OptionError, match=f"^{option}") as err:
        minimize(problem, "random", 20, seed=0, **{option: value})
    assert err.value.option == option and "evaluate_has_side_effects" in str(err.value)
    assert problem.step == 0
    with pytest.raises(OptionError):
        Evaluator(problem, **{"timeout" if option == "eval_timeout" else option: value})


def test_sor_heat_file_with_n_jobs_or_eval_timeout_exits_2_naming_it(tmp_path, capsys):
    """The issue's repro: the heat stream evaluated in worker copies lost its state."""
    for option in ("n_jobs=2", "eval_timeout=30"):
        out = tmp_path / option.split("=")[0]
        code = main(["solve", str(ROOT / "problems" / "sor_heat.yaml"), "--set", option, "--set", "budget=20",
                     "--set", "problem.steps=20", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(f"bbopt: error: {option.split('=')[0]}: "), err
        assert not out.exists()


def test_resume_refuses_n_jobs_for_a_side_effect_problem(tmp_path, capsys):
    path = tmp_path / "heat.yaml"
    path.write_text(yaml.safe_dump({"problem": {"name": "sor-heat", "nx": 16, "steps": 6},
                                    "optimizer": {"name": "chebcb", "context_range": [0.0, 10.0], "cost_offset": 0},
                                    "budget": 6, "seed": 0}))
    run = tmp_path / "run"
    assert main(["solve", str(path), "--out", str(run), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["resume", str(run), "--set", "n_jobs=2", "--set", "budget=8"]) == 2
    assert capsys.readouterr().err.startswith("bbopt: error: n_jobs: must be 1 for SORSequenceProblem")
    assert json.loads((run / "result.json").read_text())["n_evals"] == first["n_evals"] == 6
