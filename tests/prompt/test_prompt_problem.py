"""PromptTuningProblem: batched population = one by one, seeds, dev selection, resume, end to end."""

import json

import numpy as np
import pytest
import torch

from bbopt import minimize
from bbopt.problems import PromptTuningProblem
from bbopt.serialize import load_tree, save_tree

from .tiny import VERBALIZERS, build, random_z


def make(kind, tokenizer, tweets, **kw):
    settings = dict(n_prompt=4, dim=8, seed=0, **VERBALIZERS[kind])
    settings.update(kw)
    return PromptTuningProblem(build(kind), tokenizer, tweets["train"], tweets["dev"], tweets["test"], **settings)


@pytest.mark.parametrize("kind", ["bert", "roberta-mlm", "gpt2"])
@pytest.mark.parametrize("deep", [False, True])
def test_population_batch_equals_one_by_one(kind, deep, tokenizer, tweets):
    problem = make(kind, tokenizer, tweets, deep=deep, max_rows=40)  # 16 examples: 2 candidates a chunk
    z = random_z(problem, 5, scale=3.0)
    if deep:
        z[:, :8] = z[0, :8]  # like a BBTv2 visit: block 0 shared, the rest differ
    z[3] = z[1]  # a repeated candidate
    batched = problem.evaluate(z)
    single = np.array([problem.score(zi, "train")["loss"] for zi in z])
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)
    problem.share_prefix = False
    np.testing.assert_allclose(problem.population_scores(z, "train")[0], batched, rtol=1e-5, atol=1e-6)
    problem.max_rows = 5  # fewer rows than examples: examples are chunked too
    np.testing.assert_allclose(problem.population_scores(z, "train")[0], batched, rtol=1e-5, atol=1e-6)
    assert len(np.unique(batched)) == 4  # the prompts do change the loss


def test_blocks_and_space(tokenizer, tweets):
    bbt = make("bert", tokenizer, tweets)
    assert bbt.blocks == [(0, 8)] and bbt.space.dim == 8 and not bbt.space.bounded
    deep = make("bert", tokenizer, tweets, deep=True, bound=5.0)
    assert deep.blocks == [(0, 8), (8, 16), (16, 24)] and list(deep.space.blocks) == deep.blocks
    assert deep.space.bounded and deep.space.upper[0] == 5.0


def test_seeds_reproduce_and_differ(tokenizer, tweets):
    z = random_z(make("bert", tokenizer, tweets, deep=True), 4, scale=3.0)
    a = make("bert", tokenizer, tweets, deep=True, seed=3).evaluate(z)
    b = make("bert", tokenizer, tweets, deep=True, seed=3).evaluate(z)
    c = make("bert", tokenizer, tweets, deep=True, seed=4).evaluate(z)
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_dev_checks_keep_the_best_dev_prompt_and_finalize_reports(tokenizer, tweets, tmp_path):
    problem = make("bert", tokenizer, tweets, dev_every=10)
    result = minimize(problem, "cma", 40, seed=0, options={"sigma0": 1.0, "popsize": 6})
    log = problem.tracker.history()
    assert [r["calls"] for r in log] == [12, 24, 30, 40]  # first population end past each multiple of 10
    best = max(log, key=lambda r: (r["dev_accuracy"], -r["dev_loss"]))
    report = problem.finalize(result, tmp_path)
    assert report["scores"]["dev"]["accuracy"] == pytest.approx(best["dev_accuracy"])
    assert set(report["scores"]) == {"train", "dev", "test"} and report["scores"]["test"]["n"] == 24
    assert json.loads((tmp_path / "prompt_report.json").read_text())["selected"].startswith("best dev")
    fresh = make("bert", tokenizer, tweets)
    assert fresh.finalize()["selected"].startswith("zero prompt")


def test_training_curves_log_population_loss_and_dev_checks(tokenizer, tweets, tmp_path):
    from bbopt.results import METRICS, read_history

    problem = make("bert", tokenizer, tweets, dev_every=10)
    result = minimize(problem, "cma", 30, seed=0, options={"sigma0": 1.0, "popsize": 6}, run_dir=tmp_path)
    lines = read_history(tmp_path / METRICS)
    assert [m["eval"] for m in lines] == [6, 12, 18, 24, 30]
    losses = result.history.losses()
    assert [m["train_loss"] for m in lines] == pytest.approx([losses[k:k + 6].mean() for k in range(0, 30, 6)])
    dev = [(m["eval"], m["dev/accuracy"]) for m in lines if "dev/accuracy" in m]
    assert dev == [(r["calls"], r["dev_accuracy"]) for r in problem.tracker.history()] and len(dev) == 3


def test_state_dict_round_trip_continues_identically(tokenizer, tweets, tmp_path):
    a = make("bert", tokenizer, tweets, dev_every=5)
    a.evaluate(random_z(a, 6, seed=1, scale=3.0))
    save_tree(tmp_path / "s.safetensors", a.state_dict())
    b = make("bert", tokenizer, tweets, dev_every=5)
    b.load_state_dict(load_tree(tmp_path / "s.safetensors"))
    z = random_z(a, 6, seed=2, scale=3.0)
    assert np.array_equal(a.evaluate(z), b.evaluate(z))
    assert a.tracker.history() == b.tracker.history() and np.array_equal(a.tracker.dev_z, b.tracker.dev_z)
    other = make("bert", tokenizer, tweets, n_prompt=4)
    other.sigma_hat = [1.0]
    with pytest.raises(ValueError, match="another model"):
        other.load_state_dict(a.state_dict())


def test_resumed_bbtv2_run_matches_an_uninterrupted_one(tokenizer, tweets, tmp_path):
    options = {"inner_options": {"popsize": 4, "sigma0": 1.0}}
    full_problem = make("bert", tokenizer, tweets, deep=True, dev_every=8)
    full = minimize(full_problem, "block", 40, seed=5, options=options)

    class Stop(Exception):
        pass

    def crash(info):
        if info.n_evals >= 22:
            raise Stop

    run = tmp_path / "run"
    with pytest.raises(Stop):
        minimize(make("bert", tokenizer, tweets, deep=True, dev_every=8), "block", 40, seed=5, options=options,
                 run_dir=run, checkpoint_every=0.0, callbacks=[crash])
    problem = make("bert", tokenizer, tweets, deep=True, dev_every=8)
    resumed = minimize(problem, "block", 40, seed=5, options=options, run_dir=run, resume=True)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    assert problem.tracker.history() == full_problem.tracker.history()
    assert problem.finalize(resumed)["scores"] == full_problem.finalize(full)["scores"]


@pytest.mark.parametrize("kind, deep, optimizer", [("bert", False, "cma"), ("roberta-mlm", True, "block")])
def test_search_beats_random_search_at_the_same_budget(kind, deep, optimizer, tokenizer, tweets):
    """BBT / BBTv2 with the problem's own settings vs random search: the best of as many z drawn
    from N(0, σ₀²) — CMA-ES's own first-generation distribution — on the same problem."""
    budget = 240
    problem = make(kind, tokenizer, tweets, deep=deep, alpha=5.0, dev_every=30)
    result = minimize(problem, optimizer, budget, seed=0, options={"popsize": 6} if not deep
                      else {"inner_options": {"popsize": 6}})
    assert result.n_evals == budget
    z = problem.sigma0 * np.random.default_rng(0).standard_normal((budget, problem.space.dim))
    random_best = float(problem.evaluate(z).min())
    assert result.fun < random_best - 0.01, (result.fun, random_best)


@pytest.mark.parametrize("deep, optimizer", [(False, "cma"), (True, "block")])
def test_a_bare_run_uses_the_settings_the_projections_are_scaled_for(deep, optimizer, tokenizer, tweets):
    """minimize(problem, "cma"/"block", n) with no options runs BBT's / BBTv2's CMA-ES: σ₀ = the
    problem's sigma0, population 20, no restarts, full covariance, one generation per visit."""
    cma = {"sigma0": 0.5, "popsize": 20, "restarts": 0, "diagonal": False}
    explicit = cma if not deep else {"inner": "cma", "inner_options": cma, "generations_per_visit": 1}
    runs = [minimize(make("bert", tokenizer, tweets, deep=deep, sigma0=0.5), optimizer, 40, seed=1, options=options)
            for options in (None, explicit)]
    assert runs[0].n_rounds == 2  # two populations of 20
    assert [r["loss"] for r in runs[0].history] == [r["loss"] for r in runs[1].history]
    bounded = make("bert", tokenizer, tweets, deep=deep, sigma0=0.5, bound=5.0)
    assert bounded.recommended_options("cma")["sigma0"] == pytest.approx(0.05)  # a fraction of the width 10
    assert bounded.recommended_options("random") == {}


def test_the_users_model_is_not_changed(tokenizer, tweets):
    model = build("bert").train()
    model.encoder.layer[0].requires_grad_(False)
    flags = [(p.requires_grad, m.training) for m, p in zip(model.modules(), model.parameters())]
    problem = PromptTuningProblem(model, tokenizer, tweets["train"], tweets["dev"], n_prompt=4, dim=8,
                                  dev_every=4, **VERBALIZERS["bert"])
    problem.evaluate(random_z(problem, 4, scale=3.0))
    assert [(p.requires_grad, m.training) for m, p in zip(model.modules(), model.parameters())] == flags
    z = random_z(problem, 3, seed=1, scale=3.0)
    assert np.array_equal(problem.evaluate(z), problem.evaluate(z))  # eval mode inside: dropout is off


@pytest.mark.parametrize("kw, message", [
    ({"n_prompt": 0}, "n_prompt must be a positive integer"),
    ({"dim": 2.5}, "dim must be a positive integer"),
    ({"sigma0": -1.0}, "sigma0 must be a positive number"),
    ({"bound": 0}, "bound must be a positive number"),
    ({"loss": "mse"}, "loss must be one of"),
    ({"verbalizer": "softmax"}, "verbalizer must be"),
    ({"dev_every": -1}, "dev_every must be"),
])
def test_bad_settings_name_the_field(kw, message, tokenizer, tweets):
    with pytest.raises(ValueError, match=message):
        make("bert", tokenizer, tweets, **kw)


def test_bad_data_is_refused(tokenizer, tweets):
    texts, labels = tweets["train"]
    with pytest.raises(ValueError, match="labels must be integers in 0..1"):
        PromptTuningProblem(build("bert"), tokenizer, (texts, labels + 1), **VERBALIZERS["bert"])
    with pytest.raises(TypeError, match="pair"):
        PromptTuningProblem(build("bert"), tokenizer, texts, **VERBALIZERS["bert"])
    problem = make("bert", tokenizer, tweets)
    with pytest.raises(ValueError, match="split must be one of"):
        problem.score(split="validation")
    with pytest.raises(ValueError, match="expected candidates of shape"):
        problem.evaluate(np.zeros((2, 3)))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_gpu_matches_cpu(tokenizer, tweets):
    z = random_z(make("bert", tokenizer, tweets), 3, scale=3.0)
    cpu = make("bert", tokenizer, tweets).evaluate(z)
    gpu = make("bert", tokenizer, tweets, device="cuda").evaluate(z)
    np.testing.assert_allclose(cpu, gpu, rtol=1e-4)


def test_block_strategy_visits_the_layers_in_order(tokenizer, tweets):
    from bbopt import make_optimizer

    problem = make("bert", tokenizer, tweets, deep=True)
    opt = make_optimizer("block", problem.space, seed=0, inner_options={"popsize": 3, "sigma0": 1.0})
    assert opt.blocks == problem.blocks
    visited = []
    for _ in range(2 * problem.n_blocks):
        batch = opt.ask()
        z = np.asarray(batch.x)
        visited.append([b for b, (s, e) in enumerate(problem.blocks) if np.ptp(z[:, s:e], axis=0).max() > 0])
        opt.tell(batch, problem.evaluate(batch))
    assert visited == [[b] for b in range(problem.n_blocks)] * 2


def test_streamed_projections_give_the_same_losses(tokenizer, tweets):
    kept = make("bert", tokenizer, tweets, deep=True)
    streamed = make("bert", tokenizer, tweets, deep=True, projection_cache_mb=0)
    assert kept.projections[0].cache and not streamed.projections[0].cache
    z = random_z(kept, 3, scale=2.0)
    np.testing.assert_array_equal(kept.evaluate(z), streamed.evaluate(z))


@pytest.mark.slow
@pytest.mark.parametrize("deep, optimizer", [(False, "cma"), (True, "block")])
def test_minilm_search_lowers_the_training_loss(deep, optimizer):
    from bbopt.problems import get

    problem = get("prompt-tuning", deep=deep, n_prompt=5, dim=20, max_text_tokens=24, n_test=0, seed=0,
                  alpha=0.5 if deep else 1.0, dev_every=16)
    start = problem.score(split="train")["loss"]
    cma = {"sigma0": 1.0, "popsize": 8, "restarts": 0}
    result = minimize(problem, optimizer, 48, seed=0, options={"inner_options": cma} if deep else cma)
    assert result.fun < start - 0.01, (start, result.fun)
    assert problem.tracker.history() and problem.finalize(result)["selected"].startswith("best dev")
