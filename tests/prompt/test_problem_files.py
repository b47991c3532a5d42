"""The BBT/BBTv2 problem files: valid configs whose options the problem and optimizer accept;
(slow) each builds on the packaged MiniLM and runs a few calls."""

from pathlib import Path

import numpy as np
import pytest

from bbopt import make_optimizer, minimize
from bbopt.config import load_yaml, validate
from bbopt.optimizer import run_defaults
from bbopt.options import check_options
from bbopt.problems import PromptTuningProblem, get

from .tiny import VERBALIZERS, build

FILES = sorted((Path(__file__).resolve().parents[2] / "problems").glob("bbt*.yaml"))


def test_there_are_cpu_and_paper_files_for_bbt_and_bbtv2():
    assert {f.name for f in FILES} >= {"bbt_tweets_cpu.yaml", "bbtv2_tweets_cpu.yaml", "bbt_tweets_paper.yaml",
                                       "bbtv2_tweets_paper.yaml", "bbt_csv.yaml", "bbtv2_csv.yaml"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_file_is_a_valid_config_and_takes_sigma0_from_the_problem(path, tokenizer, tweets):
    """The files carry no hand-copied couplings: CMA-ES's sigma0 comes from the problem's
    recommended options (checked here on a tiny model with the file's prompt settings)."""
    config = validate(load_yaml(path))
    problem = dict(config["problem"])
    assert problem.pop("name") == "prompt-tuning"
    factory_args = {k: problem.pop(k) for k in ("model", "task", "shots", "n_test", "seed") if k in problem}
    check_options(PromptTuningProblem.from_pretrained, factory_args, "problem")
    check_options(PromptTuningProblem.__init__, problem, "problem", skip=("self",))
    spec = dict(config["optimizer"])
    name = spec.pop("name")
    assert "sigma0" not in spec and "sigma0" not in spec.get("inner_options", {})
    settings = {k: v for k, v in problem.items() if k not in ("device", "max_rows", "max_text_tokens")}
    tiny = PromptTuningProblem(build("bert"), tokenizer, tweets["train"], **{**settings, **VERBALIZERS["bert"]})
    options = run_defaults(name, spec, tiny, config["budget"])
    opt = make_optimizer(name, tiny.space, seed=0, **options)
    inner = options.get("inner_options", options)
    assert inner["sigma0"] == problem.get("sigma0", tiny.sigma0) == tiny.sigma0 and inner["restarts"] == 0
    assert len(opt.ask()) == inner["popsize"] == spec.get("inner_options", spec).get("popsize", 20)


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_file_builds_on_minilm_and_runs_a_few_calls(path, tmp_path, monkeypatch):
    monkeypatch.chdir(path.parents[1])  # task files are relative to the working directory (the repo root)
    config = validate(load_yaml(path))
    kwargs = {k: v for k, v in config["problem"].items() if k != "name"}
    kwargs["device"] = "cpu"
    if isinstance(kwargs["task"], str):
        kwargs["n_test"] = 0  # no test split to encode for a smoke run
    problem = get("prompt-tuning", **kwargs)
    spec = {k: v for k, v in config["optimizer"].items() if k != "name"}
    result = minimize(problem, config["optimizer"]["name"], 3, seed=0, options=spec)  # + recommended options
    assert result.n_evals == 3 and np.isfinite(result.fun)
    report = problem.finalize(result, tmp_path)
    assert (tmp_path / "prompt_report.json").exists() and {"train", "dev"} <= set(report["scores"])
