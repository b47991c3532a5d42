"""From YAML alone: base and expert folders, a fitness (perplexity on text files, Task data,
``module:function``), ``bbopt solve`` leaving a loadable folder and a mergekit config, resume."""

import json
import sys

import numpy as np
import pytest
import torch
import yaml

from bbopt import minimize
from bbopt.cli import main
from bbopt.config import build, validate
from bbopt.options import OptionError
from bbopt.problems import get

transformers = pytest.importorskip("transformers")


def mean_weight(model, scale=1.0):
    """A ``module:function`` fitness with a keyword argument given in the YAML."""
    return scale * float(model.transformer.h[0].mlp.c_fc.weight.mean())


@pytest.fixture
def texts(gpt2_folders, tmp_path):
    paths = []
    for name, lines in gpt2_folders.fitness.items():
        path = tmp_path / f"{name}.txt"
        path.write_text("\n".join(lines) + "\n")
        paths.append(str(path))
    return paths


def config(w, fitness, out=None, **problem):
    cfg = {"problem": {"name": "merge-hf", "base": str(w.base), "experts": [str(e) for e in w.experts],
                       "fitness": fitness, "genome": "per_layer", **problem},
           "optimizer": {"name": "cma", "sigma0": 0.2, "popsize": 4}, "budget": 8, "seed": 0}
    if out is not None:
        cfg["out"] = out
    return cfg


def test_bbopt_solve_leaves_a_loadable_folder_and_a_mergekit_config(gpt2_folders, texts, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "merge.yaml").write_text(yaml.safe_dump(config(gpt2_folders, {"perplexity": texts,
                                                                              "batch_size": 4}, "runs/m")))
    assert main(["solve", "merge.yaml"]) == 0
    folder = tmp_path / "runs" / "m" / "merged"
    model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(folder)
    recipe = yaml.safe_load((folder / "recipe.yaml").read_text())
    mk = yaml.safe_load((folder / "mergekit.yaml").read_text())
    assert mk["merge_method"] == "task_arithmetic" and len(mk["models"]) == 2
    assert set(recipe["fitness"]["corpora"]) == {"tweets", "bbc"}
    best = json.loads((tmp_path / "runs" / "m" / "summary.json").read_text())["fun"] \
        if (tmp_path / "runs" / "m" / "summary.json").exists() else recipe["fitness"]["nll"]
    assert recipe["fitness"]["nll"] == pytest.approx(best, rel=1e-6)
    assert model.config.n_layer == 2


def test_a_killed_run_resumes_to_the_uninterrupted_result(gpt2_folders, texts, tmp_path):
    cfg = validate(config(gpt2_folders, {"perplexity": texts}))
    full = minimize(*build(cfg), 8)

    class Stop(Exception):
        pass

    def crash(info):
        if info.n_evals >= 4:
            raise Stop

    run = tmp_path / "run"
    with pytest.raises(Stop):
        minimize(*build(cfg), 8, run_dir=run, checkpoint_every=0.0, callbacks=[crash])
    resumed = minimize(*build(cfg), 8, run_dir=run, resume=True)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    assert (run / "merged" / "config.json").exists()


def test_function_and_task_fitness_from_yaml(gpt2_folders, tmp_path, monkeypatch):
    w = gpt2_folders
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "my_eval.py").write_text("from tests.merge.test_hf_config import mean_weight\n")
    p = get("merge-hf", base=str(w.base), experts=[str(e) for e in w.experts],
            fitness={"function": "my_eval:mean_weight", "maximize": True, "kwargs": {"scale": 2.0}})
    x = p.x0
    assert p.evaluate(x[None])[0] == pytest.approx(-2 * mean_weight(p.model_at(x)))
    rows = [{"text": t, "label": k % 2} for k, t in enumerate(w.fitness["tweets"])]
    (tmp_path / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    seq = tmp_path / "seq"
    cfg = transformers.AutoConfig.from_pretrained(w.base)
    cfg.num_labels, cfg.pad_token_id, cfg.architectures = 2, 0, ["GPT2ForSequenceClassification"]
    torch.manual_seed(0)
    for name, src in (("base", w.base), *zip(w.expert_names, w.experts)):
        m = transformers.GPT2ForSequenceClassification.from_pretrained(src, config=cfg)
        torch.manual_seed(0)
        torch.nn.init.normal_(m.score.weight, std=0.02)  # one head, shared by base and experts
        m.save_pretrained(seq / name)
        transformers.AutoTokenizer.from_pretrained(w.base).save_pretrained(seq / name)
    tasks = get("merge-hf", base=str(seq / "base"), experts=[str(seq / n) for n in w.expert_names],
                fitness={"tasks": str(tmp_path / "dev.jsonl")}, metric="accuracy", racing=[[0.5, 1]])
    losses = tasks.evaluate(np.stack([tasks.x0, tasks.x0 * 0]))
    assert np.all((losses >= 0) & (losses <= 1))
    assert tasks.report(tasks.x0)["fitness"]["tasks"]["dev"]["n"] == len(rows)


def test_bad_fitness_entries_name_the_field(gpt2_folders, tmp_path):
    w = gpt2_folders
    kw = dict(base=str(w.base), experts=[str(e) for e in w.experts])
    with pytest.raises(OptionError, match="fitness.perplexity"):
        get("merge-hf", fitness={"perplexity": str(tmp_path / "missing.txt")}, **kw)
    with pytest.raises(OptionError, match="fitness.function"):
        get("merge-hf", fitness={"function": "no_such_module_xyz:f"}, **kw)
    with pytest.raises(OptionError, match="not used by a perplexity fitness") as err:
        get("merge-hf", fitness={"perplexity": str(tmp_path / "x.txt"), "maximize": True}, **kw)
    assert err.value.option == "fitness.maximize"
    with pytest.raises(OptionError, match=r"experts\[1\]"):
        get("merge-hf", base=str(w.base), experts=[str(w.experts[0]), str(tmp_path)], fitness={"function": "a:b"})
    assert sys.modules.get("no_such_module_xyz") is None
