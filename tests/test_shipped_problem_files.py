"""Every shipped problem file is a valid config naming registered parts (building them is
each family's own test; here nothing heavy is loaded)."""

from pathlib import Path

import pytest

from bbopt import problems
from bbopt.config import load_yaml, validate
from bbopt.optimizer import OPTIMIZERS, optimizer_class
from bbopt.options import check_options
from bbopt.parallel import expand

FILES = sorted((Path(__file__).resolve().parent.parent / "problems").glob("*.yaml"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_problem_file_is_valid(path):
    config = load_yaml(path)
    runs = [cfg for _, _, cfg in expand(config)] if ("grid" in config or "runs" in config) else [config]
    for run in runs:
        resolved = validate(run)
        assert resolved["problem"]["name"] in problems.available()
        name = resolved["optimizer"]["name"]
        assert name in OPTIMIZERS
        options = {k: v for k, v in resolved["optimizer"].items() if k != "name"}
        check_options(optimizer_class(name), options, name)
        problem_options = {k: v for k, v in resolved["problem"].items() if k != "name"}
        check_options(problems.resolve(resolved["problem"]["name"]), problem_options, "problem", skip=("self",))
