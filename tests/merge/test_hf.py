"""Hugging Face folders in and out: memory-mapped experts, shape errors, loadable saved folders."""

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from bbopt import minimize
from bbopt.merge.hf import folder_state, open_safetensors
from bbopt.merge.perplexity import Perplexity
from bbopt.problems.merging import MergeProblem

transformers = pytest.importorskip("transformers")


def fitness(w, split="fitness"):
    from bbopt.merge.gpt2 import perplexity_fitness

    return perplexity_fitness(w, split)


def test_open_safetensors_views_the_file_in_its_own_dtype(tmp_path):
    state = {"a": torch.randn(3, 4).to(torch.bfloat16), "b": torch.arange(5, dtype=torch.int64),
             "c": torch.randn(7, dtype=torch.float16), "empty": torch.zeros(0)}
    save_file(state, tmp_path / "m.safetensors")
    got = open_safetensors(tmp_path / "m.safetensors")
    assert set(got) == set(state)
    for n, t in state.items():
        assert got[n].dtype == t.dtype and torch.equal(got[n], t)
    reference = load_file(tmp_path / "m.safetensors")
    assert all(torch.equal(got[n], reference[n]) for n in state)


def test_folders_merge_save_and_load_with_from_pretrained(gpt2_folders, tmp_path):
    w = gpt2_folders
    p = MergeProblem(w.base, w.experts, fitness(w), test=fitness(w, "test"), genome="per_layer")
    assert p.expert_names == ["tweets", "bbc"]
    assert all(t.dtype == torch.float32 for t in p.tv.experts[0].values())
    res = minimize(p, "random", 4, seed=0)
    saved = p.save(res, tmp_path / "out")
    folder = saved["model"]
    assert (folder / "config.json").exists() and (folder / "recipe.yaml").exists()
    assert (folder / "tokenizer.json").exists() and saved["mergekit"].exists()
    loaded = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    ids = tok(["a tweet about the news"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ours = p.model_at(res.x)(input_ids=ids).logits
        theirs = loaded(input_ids=ids).logits
    assert torch.allclose(ours, theirs, atol=1e-6)
    recipe = yaml.safe_load((folder / "recipe.yaml").read_text())
    assert recipe["fitness"]["nll"] == pytest.approx(res.fun, rel=1e-6)
    assert Perplexity is type(p.fitness)


def test_a_merged_folder_reloads_as_a_base_with_same_scores(gpt2_folders, tmp_path):
    w = gpt2_folders
    p = MergeProblem(w.base, w.experts, fitness(w))
    x = p.x0
    folder = p.save(x, tmp_path / "m")["model"]
    again = MergeProblem(folder, w.experts, fitness(w))
    assert again.fitness.loss(again.merged.module) == pytest.approx(p.evaluate(x[None])[0], rel=1e-6)


def test_shape_mismatch_names_the_first_differing_tensor(gpt2_folders, tmp_path):
    w = gpt2_folders
    cfg = transformers.AutoConfig.from_pretrained(w.base)
    cfg.n_embd = 24
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "wide")
    base, wide = folder_state(w.base), folder_state(tmp_path / "wide")
    first = next(n for n in base if base[n].shape != wide[n].shape)
    with pytest.raises(ValueError, match=rf"experts\[1\]: tensor '{first}' has shape \({wide[first].shape[0]},"):
        MergeProblem(w.base, [w.experts[0], tmp_path / "wide"], fitness(w))


def test_experts_are_merged_in_their_own_dtype(gpt2_folders, tmp_path):
    """bf16 experts stay bf16 in memory (views of the file); the merge reads them as float32."""
    w = gpt2_folders
    half = tmp_path / "bf16"
    m = transformers.AutoModelForCausalLM.from_pretrained(w.experts[0], dtype=torch.bfloat16)
    m.save_pretrained(half)
    state = folder_state(half)
    assert {t.dtype for t in state.values()} == {torch.bfloat16}
    p = MergeProblem(w.base, [half, w.experts[1]], fitness(w), genome="soup")
    got = p.merged_state_dict(np.array([1.0, 0.0]))
    name = "transformer.h.0.attn.c_attn.weight"
    assert torch.equal(got[name], state[name].float())
