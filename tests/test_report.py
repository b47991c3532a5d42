"""Readable runs: the end-of-run summary, `bbopt show`, `bbopt compare`, DataFrames."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from bbopt import Box, minimize
from bbopt.cli import main
from bbopt.report import read_run

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = str(ROOT / "problems" / "quickstart.yaml")


def test_solve_summary_names_the_best_evaluation_and_the_commands(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["solve", QUICKSTART, "--out", str(out), "--set", "budget=120"]) == 0
    text = capsys.readouterr().out
    records = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    best = min(records, key=lambda r: r["loss"])
    assert "stopped on budget after 120 evaluations (0 failed) in " in text
    assert f"best loss {best['loss']:.6g} at evaluation {best['eval']}" in text
    for line in (f"run directory {out}", f"bbopt resume {out}", f"bbopt plot {out}", f"bbopt show {out}",
                 "config.yaml  history.jsonl  result.json  best.json  checkpoint.safetensors"):
        assert line in text
    assert main(["resume", str(out), "--set", "budget=150", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_evals"] == 150


def test_show_reads_an_unfinished_run_with_failures_and_problem_scores(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["solve", QUICKSTART, "--out", str(out), "--set", "budget=40", "--json"]) == 0
    capsys.readouterr()
    (out / "result.json").unlink()  # as if killed after its last checkpoint
    with open(out / "history.jsonl", "a") as fh:
        fh.write(json.dumps({"eval": 40, "id": 99, "round": 9, "loss": None, "status": "error", "best": None,
                             "time": 1.0, "error": "boom"}) + "\n")
    (out / "scores.json").write_text(json.dumps({"test/accuracy": 0.93, "test/loss": 0.25}))
    (out / "merged.safetensors").write_bytes(b"")
    assert main(["show", str(out)]) == 0
    text = capsys.readouterr().out
    assert "progress: 41 / 40 evaluations, 1 failed" in text and "not finished (bbopt resume continues it)" in text
    assert text.index("  problem:") < text.index("  n_jobs:")  # the config starts with what it solves
    assert "test/accuracy = 0.93" in text and str(out / "merged.safetensors") in text
    assert main(["show", str(tmp_path)]) == 2
    assert "is not a bbopt run directory" in capsys.readouterr().err


def test_nested_scores_are_flattened(tmp_path):
    minimize(lambda x: float(np.sum(x ** 2)), "random", 5, space=Box(-1, 1, dim=2), seed=0, run_dir=tmp_path,
             progress=False)
    (tmp_path / "prompt_report.json").write_text(json.dumps(
        {"selected": "best dev", "scores": {"dev": {"accuracy": 0.8, "n": 32}, "test": {"accuracy": 0.75}}}))
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"weights": [0.1, 0.2], "test": {"accuracy": 0.9}}))
    assert read_run(tmp_path)["scores"] == {"dev/accuracy": 0.8, "dev/n": 32, "test/accuracy": 0.9}


def test_compare_tabulates_a_sweep(tmp_path, capsys):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"problem": {"name": "sphere", "dim": 3}, "optimizer": {"name": "random"},
                                     "budget": 30, "grid": {"seed": [0, 1]}}))
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "s")]) == 0
    text = capsys.readouterr().out
    assert "2 runs, 0 failed" in text and f"bbopt compare {tmp_path / 's'}" in text and "best: run 000" in text
    assert main(["compare", str(tmp_path / "s"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["run"], r["seed"], r["evals"], r["stop"]) for r in rows] == [("0000-seed=0", 0, 30, "budget"),
                                                                          ("0001-seed=1", 1, 30, "budget")]
    summary = [json.loads(line) for line in (tmp_path / "s" / "summary.jsonl").read_text().splitlines()]
    assert sorted(r["best"] for r in rows) == sorted(r["fun"] for r in summary)
    assert main(["compare", str(tmp_path / "s")]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["run", "problem", "optimizer", "seed", "evals", "failed", "best", "best_eval", "stop",
                              "seconds"]
    assert len(lines) == 2 and lines[0].startswith("0000-seed=0  sphere")
    assert main(["show", str(tmp_path / "s")]) == 2
    assert f"it is a sweep directory: bbopt compare {tmp_path / 's'}" in capsys.readouterr().err


def test_to_pandas():
    pandas = pytest.importorskip("pandas")
    result = minimize(lambda x: float(np.sum(x ** 2)), "cma", 40, space=Box(-1, 1, dim=2), seed=0, progress=False)
    frame = result.to_pandas()
    assert isinstance(frame, pandas.DataFrame) and len(frame) == 40
    assert list(frame["eval"]) == list(range(40)) and frame["best"].iloc[-1] == result.fun
    assert frame.attrs["summary"]["n_evals"] == 40
    assert result.history.to_pandas().equals(frame)


def test_to_pandas_without_pandas_says_what_to_install(monkeypatch):
    import sys

    result = minimize(lambda x: float(np.sum(x ** 2)), "random", 3, space=Box(-1, 1, dim=2), seed=0, progress=False)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        result.to_pandas()


def test_training_metrics_are_shown_smoothed_and_latest(tmp_path, capsys):
    minimize(lambda x: float(np.sum(x ** 2)), "random", 5, space=Box(-1, 1, dim=2), seed=0, run_dir=tmp_path,
             progress=False)
    with open(tmp_path / "metrics.jsonl", "w") as fh:
        for step in range(1, 101):
            line = {"eval": 2 * step, "round": step - 1, "time": 0.1 * step, "train_loss": float(step)}
            if step % 30 == 0:
                line["dev/accuracy"] = step / 100
            fh.write(json.dumps(line) + "\n")
    metrics = read_run(tmp_path)["metrics"]
    assert metrics == {"train_loss": (np.mean(np.arange(51, 101)), 200), "dev/accuracy": (0.9, 180)}
    assert main(["show", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "dev/accuracy = 0.9   (metrics.jsonl, evaluation 180)" in text
    assert "train_loss = 75.5   (metrics.jsonl, evaluation 200, mean of the last 50 steps)" in text
    assert "lowest mini-batch loss of a candidate: " in text
