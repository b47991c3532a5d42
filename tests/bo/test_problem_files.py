"""Every problems/rducb_*.yaml validates, builds its problem by name and runs a few evaluations."""

from pathlib import Path

import numpy as np
import pytest

from bbopt.config import build, load_yaml, validate
from bbopt.loop import minimize

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(ROOT.glob("problems/rducb_*.yaml"))


def test_the_files_exist():
    names = {p.stem for p in FILES}
    assert {"rducb_styblinski_tang_20d", "rducb_styblinski_tang_50d", "rducb_styblinski_tang_100d",
            "rducb_rosenbrock_20d", "rducb_lasso_diabetes"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_problem_file_builds_and_runs(path):
    config = validate(load_yaml(path))
    problem, optimizer = build(config)
    assert config["optimizer"]["name"] == "rducb"
    result = minimize(problem, optimizer, 12, progress=False)  # 10 random points, then 2 RDUCB steps
    assert len(result.history) == 12 and np.isfinite(result.fun)
