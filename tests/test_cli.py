import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bbopt.cli import main
from bbopt.results import read_history

ROOT = Path(__file__).resolve().parent.parent
BAD = sorted((ROOT / "tests" / "data" / "bad_configs").glob("*.yaml"))


def write(path, config):
    path.write_text(yaml.safe_dump(config))
    return str(path)


def strip_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_exits_2_with_one_line_naming_the_field(path, tmp_path, capsys):
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    out = tmp_path / "run"
    assert main(["solve", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_solve_writes_a_complete_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["solve", str(ROOT / "problems" / "quickstart.yaml"), "--out", str(out),
                 "--set", "budget=300", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_evals"] == 300
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["budget"] == 300 and resolved["seed"] == 0 and resolved["optimizer"]["name"] == "cma"
    assert len(read_history(out / "history.jsonl")) == 300


def test_module_attr_objective_with_a_space_from_the_config(tmp_path, capsys):
    cfg = write(tmp_path / "p.yaml", {"problem": {"name": "objectives:Quadratic", "dim": 2},
                                      "optimizer": "cma", "budget": 200, "seed": 1})
    assert main(["solve", cfg, "--out", str(tmp_path / "r"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fun"] < 1e-3


def test_a_failing_run_exits_1_keeps_its_evaluations_and_resumes(tmp_path, capsys, monkeypatch):
    import objectives

    space = {"lower": -5, "upper": 5, "dim": 2}
    clean = write(tmp_path / "clean.yaml", {"problem": {"name": "objectives:slow_sphere", "space": space},
                                            "optimizer": "cma", "budget": 300, "seed": 0})
    assert main(["solve", clean, "--out", str(tmp_path / "clean")]) == 0
    cfg = write(tmp_path / "p.yaml", {"problem": {"name": "objectives:fails_after_100", "space": space},
                                      "optimizer": "cma", "budget": 300, "seed": 0, "checkpoint_every": 1000})
    out = tmp_path / "r"
    monkeypatch.setitem(objectives._CALLS, "n", 0)
    assert main(["solve", cfg, "--out", str(out)]) == 1
    assert "license server went away" in capsys.readouterr().err
    assert 90 <= len(read_history(out / "history.jsonl")) <= 100
    monkeypatch.setenv("BBOPT_TEST_RECOVERED", "1")
    monkeypatch.setitem(objectives._CALLS, "n", 0)
    assert main(["resume", str(out), "--set", "seed=3"]) == 2  # only run-control keys may change
    assert main(["resume", str(out)]) == 0
    assert objectives._CALLS["n"] <= 300 - 90  # recorded evaluations were reused
    assert strip_time(read_history(out / "history.jsonl")) == strip_time(
        read_history(tmp_path / "clean" / "history.jsonl"))


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *args], cwd=kw.get("cwd", ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_then_resume_gives_the_uninterrupted_history(tmp_path):
    config = {"problem": {"name": "objectives:slow_sphere", "space": {"lower": -5, "upper": 5, "dim": 4}},
              "optimizer": "cma", "budget": 400, "seed": 11, "checkpoint_every": 0.05}
    cfg = write(tmp_path / "p.yaml", config)
    reference = tmp_path / "reference"
    assert _cli("solve", cfg, "--out", str(reference)).wait(120) == 0
    expected = strip_time(read_history(reference / "history.jsonl"))
    rng = random.Random(0)
    for attempt in range(3):
        out = tmp_path / f"killed{attempt}"
        proc = _cli("solve", cfg, "--out", str(out))
        deadline = time.time() + 60
        while not (out / "history.jsonl").exists() and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        resumed = _cli("resume", str(out))
        assert resumed.wait(120) == 0, resumed.stderr.read()
        assert strip_time(read_history(out / "history.jsonl")) == expected


def test_sweep_on_loky_and_dask_records_every_run_once_with_identical_results(tmp_path):
    sweep = write(tmp_path / "s.yaml", {"problem": {"name": "sphere", "dim": 3}, "optimizer": "cma",
                                        "budget": 60, "grid": {"seed": [0, 1], "optimizer.name": ["cma", "random"]}})
    rows = {}
    for backend in ("loky", "dask"):
        out = tmp_path / backend
        assert main(["sweep", sweep, "--out", str(out), "--n-jobs", "2", "--backend", backend]) == 0
        lines = [json.loads(line) for line in (out / "summary.jsonl").read_text().splitlines()]
        assert sorted(r["run"] for r in lines) == sorted({r["run"] for r in lines}) and len(lines) == 4
        rows[backend] = {r["run"]: r["fun"] for r in lines}
        assert (out / "summary.csv").read_text().count("\n") == 5
    assert rows["loky"] == rows["dask"]
    # re-running skips finished runs: nothing is recomputed, every run still recorded once
    assert main(["sweep", sweep, "--out", str(tmp_path / "loky"), "--n-jobs", "2"]) == 0
    assert len((tmp_path / "loky" / "summary.jsonl").read_text().splitlines()) == 8


def test_list_and_plot(tmp_path, capsys):
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "cma" in listing and "rosenbrock" in listing
    out = tmp_path / "run"
    assert main(["solve", str(ROOT / "problems" / "quickstart.yaml"), "--out", str(out), "--set", "budget=100"]) == 0
    assert main(["plot", str(out), "--logy"]) == 0
    png = out / "best.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_console_script_and_shim_agree():
    shim = subprocess.run([sys.executable, str(ROOT / "cli.py"), "list"], capture_output=True, text=True)
    script = Path(sys.executable).with_name("bbopt")
    assert shim.returncode == 0
    if script.exists():
        assert subprocess.run([str(script), "list"], capture_output=True, text=True).stdout == shim.stdout
    assert os.path.exists(ROOT / "cli.py")
