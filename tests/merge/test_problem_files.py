"""Every problems/merge_*.yaml builds its problem by name and runs a few evaluations."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from bbopt import minimize
from bbopt.problems import get

FILES = sorted((Path(__file__).resolve().parents[2] / "problems").glob("merge_*.yaml"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_problem_file_builds_and_runs(path, digits_cache, small, tmp_path):
    config = yaml.safe_load(path.read_text())
    assert {"problem", "optimizer", "budget", "seed"} <= set(config)
    kwargs = {k: v for k, v in config["problem"].items() if k != "name"}
    if config["problem"]["name"].startswith("merge-digits"):
        kwargs.update(cache_dir=str(digits_cache), hidden=small["hidden"], depth=small["depth"])
    else:
        pytest.skip("needs the fine-tuned MiniLM experts (slow tests build them)")
    problem = get(config["problem"]["name"], **kwargs)
    options = {k: v for k, v in config["optimizer"].items() if k != "name"}
    res = minimize(problem, config["optimizer"]["name"], 12, seed=config["seed"], options=options)
    assert res.n_evals == 12 and np.isfinite(res.fun)
    saved = problem.finalize(res, tmp_path)
    assert saved["model"].exists() and saved["recipe"].exists()
