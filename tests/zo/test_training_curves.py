"""Training curves: TorchProblem's metrics.jsonl (step loss, dev metrics), resume, and `bbopt plot`."""

import json

import numpy as np
import pytest

from bbopt import minimize
from bbopt.plotting import ema, plot_runs
from bbopt.problems import get
from bbopt.results import METRICS, RunDir, read_history


def train(run_dir=None, optimizer="mezo", budget=120, **options):
    problem = get("zo-digits-mlp", seed=0, dev_every=40)
    return minimize(problem, optimizer, budget, seed=0, options={"lr": 0.003, "eps": 1e-3, **options},
                    run_dir=run_dir, progress=False, record_x=False)


def test_metrics_log_step_loss_and_dev_metrics_without_changing_the_run(tmp_path):
    logged = train(tmp_path / "run")
    lines = read_history(tmp_path / "run" / METRICS)
    history = logged.history.records()
    assert [m["eval"] for m in lines] == list(range(2, 121, 2))  # one line per MeZO step (2 forwards)
    for m in lines:  # the step's loss: the mean of its ± pair
        pair = [r["loss"] for r in history if r["round"] == m["round"]]
        assert m["train_loss"] == pytest.approx(np.mean(pair), rel=1e-12)
    scored = [m for m in lines if "val/accuracy" in m]
    assert [m["eval"] for m in scored] == [40, 80, 120]
    assert all(0 <= m["val/accuracy"] <= 1 for m in scored) and not any("test/accuracy" in m for m in lines)
    plain = train()  # no run directory: nothing logged, and the dev evaluations moved nothing
    assert [r["loss"] for r in plain.history] == [r["loss"] for r in history]


def test_forward_gradient_logs_the_primal_loss(tmp_path):
    train(tmp_path / "run", optimizer="forward-gradient", budget=24, q=2)
    lines = read_history(tmp_path / "run" / METRICS)
    assert lines and all(np.isfinite(m["train_loss"]) and 1.5 < m["train_loss"] < 3.0 for m in lines)


def test_resume_drops_metrics_of_rounds_that_run_again(tmp_path):
    run = RunDir(tmp_path)
    run.create({}, resume=False)
    run.append([{"eval": i, "loss": 1.0, "best": 1.0} for i in range(6)])
    for n in (2, 4, 6):
        run.append_metrics({"eval": n, "train_loss": 1.0})
    run.close()
    run.rewind_history(4)
    assert [m["eval"] for m in read_history(tmp_path / METRICS)] == [2, 4]


def test_plot_draws_training_curves_for_training_runs_and_best_so_far_otherwise(tmp_path):
    for seed in (0, 1):
        minimize(get("zo-digits-mlp", seed=seed, dev_every=20), "mezo", 40, seed=seed,
                 run_dir=tmp_path / f"mezo-{seed}", progress=False)
    out = plot_runs([tmp_path / "mezo-0", tmp_path / "mezo-1"])
    assert out == tmp_path / "mezo-0" / "training.png" and out.read_bytes()[:4] == b"\x89PNG"
    minimize(get("sphere", dim=3), "random", 30, seed=0, run_dir=tmp_path / "plain", progress=False)
    assert plot_runs([tmp_path / "plain"]).name == "best.png"
    assert json.loads((tmp_path / "mezo-0" / "result.json").read_text())["n_evals"] == 40


def test_ema_is_debiased():
    assert np.allclose(ema(np.full(5, 3.0), 0.9), 3.0)
    assert ema(np.array([0.0, 10.0]), 0.5)[1] == pytest.approx(10 * 0.5 / 0.75)
