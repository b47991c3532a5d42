"""mergekit configs out and in: mergekit itself, run on the exported config, reproduces bbopt's
merged tensors (≤ 1e-5) on a tiny locally built GPT-2; a mergekit config as the search's x0."""

import numpy as np
import pytest
import torch
import yaml

from bbopt.merge.genome import Gene, GenomeSpec
from bbopt.merge.hf import folder_state
from bbopt.merge.mergekit import NotExpressible, recipe_of, to_mergekit
from bbopt.problems.merging import MergeProblem

merge = pytest.importorskip("mergekit.merge")
mergekit_config = pytest.importorskip("mergekit.config")

ATOL = 1e-5
PER_LAYER = {"ties": ("weight", "density"), "dare_ties": ("weight", "density"), "dare_linear": ("weight", "density"),
             "task_arithmetic": ("weight",), "linear": ("weight",)}


def fitness(w):
    from bbopt.merge.gpt2 import perplexity_fitness

    return perplexity_fitness(w)


def genome(method):
    if method == "slerp":
        return GenomeSpec("slerp", [Gene("t", ("layer",), 0.0, 1.0)])
    genes = [Gene(g, ("layer", "model"), 0.05 if g == "density" else 0.0, 1.0 if g == "density" else 1.5)
             for g in PER_LAYER[method]]
    return GenomeSpec(method, genes)


def run_mergekit(config, out):
    merge.run_merge(mergekit_config.MergeConfiguration.model_validate(config), str(out),
                    merge.MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True, random_seed=0))
    return folder_state(out)


@pytest.fixture(scope="module")
def noisy_experts(gpt2_folders, tmp_path_factory):
    """The tiny experts plus seeded Gaussian noise: a few Adam steps leave |τ| values exactly
    tied (steps of size lr), and at a tie on the TIES threshold mergekit keeps an arbitrary k
    entries (argsort) where bbopt keeps all tied ones; real fine-tunes have no such ties."""
    from transformers import AutoModelForCausalLM

    gen = torch.Generator().manual_seed(0)
    out = []
    for path in gpt2_folders.experts:
        m = AutoModelForCausalLM.from_pretrained(path)
        with torch.no_grad():
            for t in m.parameters():
                t.add_(1e-3 * torch.randn(t.shape, generator=gen))
        dst = tmp_path_factory.mktemp("noisy") / path.name
        m.save_pretrained(dst)
        out.append(dst)
    return out


@pytest.mark.parametrize("method", ["linear", "task_arithmetic", "ties", "dare_linear", "dare_ties", "slerp"])
def test_mergekit_on_the_exported_config_reproduces_the_merge(method, gpt2_folders, noisy_experts, forced_masks,
                                                              tmp_path):
    w = gpt2_folders
    p = MergeProblem(w.base, noisy_experts, fitness(w), genome=genome(method))
    forced_masks.update(base=p.tv.base, experts=p.tv.experts, seed=p.tv.dare_seed)
    x = np.random.default_rng(3).uniform(p.space.lower, p.space.upper)
    config = p.mergekit_config(x)
    assert config["merge_method"] == method
    theirs = run_mergekit(yaml.safe_load(yaml.safe_dump(config)), tmp_path / "mk")
    ours = p.merged_state_dict(x)
    for n in p.tv.names:
        diff = float((ours[n] - theirs[n].float()).abs().max())
        assert diff <= ATOL, f"{method} {n}: max |diff| {diff:.3g}"


def test_saved_folder_carries_a_mergekit_config_that_reads_back_as_x0(gpt2_folders, tmp_path):
    w = gpt2_folders
    p = MergeProblem(w.base, w.experts, fitness(w), genome="per_layer")
    x = np.random.default_rng(4).uniform(p.space.lower, p.space.upper)
    saved = p.save(x, tmp_path / "out")
    started = MergeProblem(w.base, w.experts, fitness(w), genome="per_layer", x0=saved["mergekit"])
    assert np.allclose(started.x0, x, atol=1e-9)
    coarse = MergeProblem(w.base, w.experts, fitness(w), genome="per_model", x0=saved["mergekit"])
    assert coarse.x0.shape == (2,)  # projected: least squares over the layer slots = their mean
    assert np.allclose(coarse.x0, p.genome.values(x)["weight"][:, :, 0].mean(0), atol=1e-9)


def test_mergekit_gradients_and_defaults_are_read():
    names = ["emb.weight", "h.0.w", "h.1.w", "h.2.w", "head.weight"]
    config = {"merge_method": "task_arithmetic", "base_model": "b",
              "models": [{"model": "e0", "parameters": {"weight": [0.0, 1.0]}},
                         {"model": "e1", "parameters": {"weight": [{"filter": "h.1", "value": 0.3}, {"value": 0.7}]}}],
              "parameters": {"lambda": 0.5}}
    r = recipe_of(config, names, None, 2)
    assert np.allclose(r.weight[1:4, 0], [0.0, 0.5, 1.0]) and r.lam == 0.5
    assert np.allclose(r.weight[:, 1], [0.7, 0.7, 0.3, 0.7, 0.7])


def test_variants_mergekit_cannot_express_are_refused():
    from bbopt.merge.recipe import Recipe

    r = Recipe.uniform("ties", 2, 2, density=0.5, trim="global")
    with pytest.raises(NotExpressible, match="global"):
        to_mergekit(r, ["a", "b"], "base", ["e0", "e1"])
    with pytest.raises(NotExpressible, match="excluded"):
        to_mergekit(Recipe.uniform("linear", 2, 2), ["a", "b"], "base", ["e0", "e1"], excluded=["c"])
