"""The real ZO workloads and their problem files: digits MLP / CNN, MiniLM on tweets, lr search."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bbopt import minimize
from bbopt.problems import get
from bbopt.problems.text_data import AnchoredBatches, AnchorLoss, MeanPooledEncoder, anchor_accuracy
from bbopt.problems.torch_data import repeat_batch
from bbopt.runner import prepare, solve

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "problems").glob("zo_*.yaml"))
MINILM = [f for f in FILES if "minilm" in f.name]


def test_every_zo_problem_file_is_here():
    assert len(FILES) >= 7 and len(MINILM) == 2


@pytest.mark.parametrize("path", [f for f in FILES if f not in MINILM], ids=lambda p: p.name)
def test_digits_problem_files_validate_build_and_run(path):
    config = yaml.safe_load(path.read_text())
    prepare(config)  # the CLI's own validation: names, options, budget
    options = {k: v for k, v in config["problem"].items() if k != "name"}
    problem = get(config["problem"]["name"], **options)
    opt = {k: v for k, v in config["optimizer"].items() if k != "name"}
    if opt.get("layer_density") == "grasp":
        opt["grasp_q"] = 4  # keep the test short: the ZO-GraSP rounds cost grasp_q + 1 FE each
    result = minimize(problem, config["optimizer"]["name"], 2 * 5 + 40, seed=0, options=opt, progress=False)
    assert result.n_evals > 0 and np.isfinite(result.history.losses()).all()


@pytest.mark.slow
@pytest.mark.parametrize("path", MINILM, ids=lambda p: p.name)
def test_minilm_problem_files_build_and_run(path):
    config = yaml.safe_load(path.read_text())
    options = {k: v for k, v in config["problem"].items() if k != "name"}
    problem = get(config["problem"]["name"], **{**options, "n_test": 20})
    before = [p.detach().clone() for p in problem.space.tensors]
    opt = {k: v for k, v in config["optimizer"].items() if k != "name"}
    result = minimize(problem, config["optimizer"]["name"], 4, seed=0, options=opt, progress=False)
    assert result.n_evals == 4 and np.isfinite(result.history.losses()).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, problem.space.tensors))
    assert set(problem.scores()) == {"dev/accuracy", "test/accuracy", "dev/loss", "test/loss"}


def test_initial_weights_follow_the_seed_not_the_global_rng():
    state = torch.random.get_rng_state()
    a, b, c = get("zo-digits-mlp", seed=1), get("zo-digits-mlp", seed=1), get("zo-digits-cnn", seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.space.tensors, b.space.tensors))
    assert not torch.equal(a.space.tensors[0], get("zo-digits-mlp", seed=2).space.tensors[0])
    assert c.space.n_params == 1898 and a.space.n_params == 4810


def test_a_cli_run_saves_the_trained_model_and_its_scores(tmp_path):
    config = yaml.safe_load((ROOT / "problems" / "zo_digits_mlp_ulr.yaml").read_text())
    config["budget"] = 64
    solve(config, out=tmp_path / "run")
    scores = yaml.safe_load((tmp_path / "run" / "scores.json").read_text())
    assert set(scores) == {"val/accuracy", "test/accuracy"}
    problem = get("zo-digits-mlp", seed=0)
    untrained = [p.detach().clone() for p in problem.space.tensors]
    problem.load(tmp_path / "run" / "model.safetensors")
    assert any(not torch.equal(a, b) for a, b in zip(untrained, problem.space.tensors))
    assert problem.scores()["test/accuracy"] == pytest.approx(scores["test/accuracy"])


def tiny_encoder():
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=12)
    torch.manual_seed(0)
    return MeanPooledEncoder(BertModel(config))


def test_anchor_objective_is_per_example_and_per_copy():
    model = tiny_encoder().eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 30, (6, 10), generator=g)
    mask = torch.ones(6, 10, dtype=torch.long)
    mask[0, 7:] = 0
    anchors = {"anchor_ids": torch.randint(2, 30, (2, 4), generator=g), "anchor_mask": torch.ones(2, 4, dtype=torch.long)}
    batches = AnchoredBatches([(ids, mask, torch.tensor([0, 1, 0, 1, 1, 0]))], anchors)
    batch = batches[0]
    loss = AnchorLoss(0.05)
    with torch.no_grad():
        single = loss(model, batch)
        tripled = loss(model, repeat_batch(batch, 3))
        emb = model(ids, mask)
    assert single.shape == (6,) and torch.allclose(tripled, single.repeat(3), atol=1e-5)
    assert torch.allclose(emb.norm(dim=1), torch.ones(6), atol=1e-5)
    acc = anchor_accuracy(model, batch)
    assert set(acc.tolist()) <= {0.0, 1.0}


def test_likelihood_ratio_refuses_a_loss_that_calls_the_model_twice():
    from bbopt.perturbations import NoisyCopy
    from bbopt.problems import TorchProblem

    model = tiny_encoder()
    g = torch.Generator().manual_seed(1)
    anchors = {"anchor_ids": torch.randint(2, 30, (2, 4), generator=g), "anchor_mask": torch.ones(2, 4, dtype=torch.long)}
    data = AnchoredBatches([(torch.randint(2, 30, (4, 6), generator=g), torch.ones(4, 6, dtype=torch.long),
                             torch.tensor([0, 1, 1, 0]))], anchors)
    p = TorchProblem(model, AnchorLoss(), data)
    with pytest.raises(ValueError, match="ran twice"):
        p.evaluate([NoisyCopy(0, 1, k, 2, 0.1) for k in range(2)])


def test_lr_search_runs_a_sweep_and_picks_the_best_mean(tmp_path):
    from bbopt.tuning import log_grid, search

    assert log_grid(1e-3, 1e-1, 3) == [0.001, 0.01, 0.1]
    best, rows = search({"name": "zo-digits-mlp", "hidden": 16}, {"name": "likelihood-ratio", "q": 4},
                        {"lr": [1e-4, 0.1]}, 160, tmp_path, seeds=(0,))
    assert best == {"lr": 0.1} and rows[0]["val/accuracy"] > rows[1]["val/accuracy"]
    assert len(list(tmp_path.glob("*/scores.json"))) == 2
