"""Random projections: std follows s = α·σ̂/(√d·σ₀), regenerated chunks equal the stored matrix."""

import math

import numpy as np
import pytest
import torch

from bbopt.problems.prompt import PromptTuningProblem
from bbopt.problems.prompt_projection import CHUNK_ROWS, RandomProjection, clipped_std, projection_std

from .tiny import VERBALIZERS, build


def seq(n):
    return np.random.SeedSequence(n)


def test_entries_have_the_formula_std():
    s = projection_std(alpha=0.5, sigma_hat=0.06, dim=100, sigma0=0.2)
    assert s == pytest.approx(0.5 * 0.06 / (10 * 0.2))
    a = RandomProjection(CHUNK_ROWS + 500, 100, s, seq(0)).matrix()
    assert a.shape == (CHUNK_ROWS + 500, 100)
    assert float(a.std()) == pytest.approx(s, rel=0.01)
    assert abs(float(a.mean())) < 0.01 * s


def test_prompt_scale_matches_alpha_sigma_hat_for_sigma0_steps():
    """z with coordinates of std σ₀ gives prompt entries of std α·σ̂ (why BBT scales A this way)."""
    alpha, sigma_hat, d, sigma0 = 0.7, 0.05, 200, 0.3
    proj = RandomProjection(3000, d, projection_std(alpha, sigma_hat, d, sigma0), seq(1))
    z = sigma0 * np.random.default_rng(0).standard_normal((64, d))
    assert float(proj(z).std()) == pytest.approx(alpha * sigma_hat, rel=0.03)


def test_streamed_chunks_equal_the_stored_matrix_and_seeds_differ():
    kept = RandomProjection(2 * CHUNK_ROWS + 7, 16, 0.1, seq(5), cache=True)
    streamed = RandomProjection(2 * CHUNK_ROWS + 7, 16, 0.1, seq(5), cache=False)
    z = np.random.default_rng(0).standard_normal((3, 16))
    assert torch.equal(kept(z), streamed(z))
    assert streamed._matrix is None  # nothing stored in streaming mode
    other = RandomProjection(2 * CHUNK_ROWS + 7, 16, 0.1, seq(6))
    assert not torch.equal(kept.matrix(), other.matrix())
    assert torch.equal(kept.matrix(), RandomProjection(2 * CHUNK_ROWS + 7, 16, 0.1, seq(5)).matrix())
    assert torch.equal(kept(np.zeros((2, 16))), torch.zeros(2, 2 * CHUNK_ROWS + 7))


def test_clipped_std_removes_outliers_like_bbtv2():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 100_000), np.full(50, 1e4)])
    assert np.std(x) > 10
    assert clipped_std(x) == pytest.approx(1.0, rel=0.02)
    manual = x.copy()
    for _ in range(5):
        manual = np.clip(manual, manual.mean() - 3 * manual.std(), manual.mean() + 3 * manual.std())
    assert clipped_std(x) == pytest.approx(manual.std(), rel=1e-12)


def test_bad_projection_settings_raise():
    with pytest.raises(ValueError, match="sizes"):
        RandomProjection(0, 4, 0.1, seq(0))
    with pytest.raises(ValueError, match="std"):
        RandomProjection(4, 4, 0.0, seq(0))
    with pytest.raises(ValueError, match="no values"):
        clipped_std([])


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_problem_measures_sigma_hat_per_layer(kind, tokenizer, tweets):
    model = build(kind)
    problem = PromptTuningProblem(model, tokenizer, tweets["train"], deep=True, n_prompt=4, dim=20, alpha=0.5,
                                  sigma0=0.25, **VERBALIZERS[kind])
    emb = model.get_input_embeddings().weight.detach().double()
    assert problem.sigma_hat[0] == pytest.approx(float(emb.std(unbiased=False)), rel=1e-9)
    split = problem.splits["train"]
    extra = {"use_cache": False} if kind == "gpt2" else {}
    with torch.no_grad():
        states = model.base_model(input_ids=split.input_ids, attention_mask=split.attention_mask,
                                  output_hidden_states=True, **extra).hidden_states
    real = split.attention_mask.bool()
    for layer in range(1, problem.n_blocks):
        assert problem.sigma_hat[layer] == pytest.approx(clipped_std(states[layer][real].double().numpy()), rel=1e-6)
        want = 0.5 * problem.sigma_hat[layer] / (math.sqrt(20) * 0.25)
        assert problem.projections[layer].std == pytest.approx(want, rel=1e-12)
