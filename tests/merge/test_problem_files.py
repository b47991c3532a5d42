"""Every problems/merge_*.yaml is validated and built as ``bbopt solve`` would, and runs.

The default suite builds each file's problem at a small size (the digits MLP with few units,
MiniLM's file with a tiny config-built BERT and few fine-tuning steps) with everything
else — genome, racing, optimizer options — exactly as the file says; the slow test runs
``merge_minilm.yaml`` unchanged on the packaged MiniLM (its experts take minutes to build
on a CPU the first time, then come from ~/.cache/bbopt), and so does ``merge_gpt2.yaml``.
"""

import copy
from pathlib import Path

import numpy as np
import pytest

from bbopt import minimize
from bbopt.config import build, load_yaml, validate

FILES = sorted((Path(__file__).resolve().parents[2] / "problems").glob("merge_*.yaml"))
TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def small_version(config: dict, cache_dir: str, small: dict, tiny_gpt2: dict, gpt2_folders, tmp: Path) -> dict:
    """The file's config with only the model and data sizes made small (merge-hf: the tiny
    GPT-2 folders and text files in place of the file's own paths)."""
    config = copy.deepcopy(config)
    problem = config["problem"]
    if problem["name"].startswith("merge-digits"):
        problem.update(cache_dir=cache_dir, hidden=small["hidden"], depth=small["depth"])
    elif problem["name"] == "merge-minilm":
        problem.update(cache_dir=cache_dir, encoder_config=TINY_BERT, n_train=64, n_fitness=12, n_test=12, steps=4)
    elif problem["name"] == "merge-gpt2":
        problem.update(tiny_gpt2)
    elif problem["name"] == "merge-hf":
        texts = []
        for name, lines in gpt2_folders.fitness.items():
            (tmp / f"{name}.txt").write_text("\n".join(lines))
            texts.append(str(tmp / f"{name}.txt"))
        problem.update(base=str(gpt2_folders.base), experts=[str(e) for e in gpt2_folders.experts])
        problem["fitness"] = {**problem["fitness"], "perplexity": texts, "max_length": 32}
    else:
        raise AssertionError(f"no small version of {problem['name']} in this test: add one")
    config["budget"] = 12
    return config


def run_file(config: dict, out_dir: Path) -> None:
    resolved = validate(config)
    problem, optimizer = build(resolved)
    res = minimize(problem, optimizer, resolved["budget"])
    assert res.n_evals == resolved["budget"] and np.isfinite(res.fun)
    saved = problem.finalize(res, out_dir)
    assert saved["model"].exists() and saved["recipe"].exists()
    if (saved["model"] / "config.json").exists():  # a Hugging Face folder: from_pretrained loads it
        from transformers import AutoModelForCausalLM

        AutoModelForCausalLM.from_pretrained(saved["model"])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_problem_file_validates_builds_and_runs(path, digits_cache, small, tiny_gpt2, gpt2_folders, tmp_path):
    config = load_yaml(path)
    assert {"problem", "optimizer", "budget", "seed"} <= set(config)
    run_file(small_version(config, str(digits_cache), small, tiny_gpt2, gpt2_folders, tmp_path), tmp_path / "out")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["merge_minilm.yaml", "merge_gpt2.yaml"])
def test_model_files_run_unchanged_on_their_models(name, tmp_path):
    config = load_yaml(FILES[0].parent / name)
    config["budget"] = 6
    run_file(config, tmp_path)
