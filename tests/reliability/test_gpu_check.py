"""benchmarks/gpu_check.sh (issue 16): its dry run prints the whole plan, runs nothing, exits 0."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_dry_run_prints_every_step_bounded_in_time(tmp_path):
    out = tmp_path / "out"
    done = run(str(out), "--dry-run")
    assert done.returncode == 0, done.stderr
    plan = {line.split(":")[0].split(" ")[0]: line for line in done.stdout.splitlines()[1:]}
    assert list(plan) == ["install", "versions", "pytest-gpu", "Z1", "Z2", "Z3", "B2", "E4"]
    assert all(": timeout " in line for line in plan.values())
    assert sum(int(line.split(": timeout ")[1].split()[0]) for line in plan.values()) <= 600  # a rerun fits in 15 min
    assert "pip install --no-index" in plan["install"] and "--find-links wheels" in plan["install"]
    assert "-m pytest -m gpu" in plan["pytest-gpu"]
    assert "zo_memory.py --device cuda" in plan["Z1"]
    assert "zo_speed.py --device cuda --parts z2" in plan["Z2"] and "minilm:16:all:gaussian" in plan["Z2"]
    assert "zo_speed.py --device cuda --parts z3" in plan["Z3"]
    assert "bbt_population.py" in plan["B2"] and "sweep.py" in plan["E4"]
    assert not out.exists()  # nothing ran, nothing was written
    assert "download" not in done.stdout and "http" not in done.stdout  # nothing fetched at run time


def test_bad_arguments_exit_2():
    assert run().returncode == 2
    bad = run("out", "--bogus")
    assert bad.returncode == 2 and "--bogus" in bad.stderr


def test_the_benchmarks_it_calls_take_its_options():
    """The flags in the plan exist in the scripts (a renamed option would make the GPU run fail)."""
    for script, flags in {"zo_memory.py": ["--device", "--seeds", "--methods"],
                          "zo_speed.py": ["--device", "--parts", "--seeds", "--rows"]}.items():
        text = (ROOT / "benchmarks" / script).read_text(encoding="utf-8")
        assert all(f'"{flag}"' in text for flag in flags), script


def test_a_run_writes_one_table_with_every_step(tmp_path):
    """The non-dry path with PYTHON=true (every step a no-op): one row per step, logs, the RESULTS diff."""
    env = {**os.environ, "PYTHON": "true", "WHEELS": str(tmp_path / "no-wheels")}
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True, timeout=60,
                          env=env)
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "out" / "gpu_check.md").read_text().splitlines()
    assert rows[0].startswith("| step | exit |") and len(rows) == 2 + 8
    assert rows[2].startswith("| install | skipped |")
    assert all(row.split("|")[2].strip() == "0" for row in rows[3:])
    assert (tmp_path / "out" / "logs" / "Z2.log").exists() and (tmp_path / "out" / "results_added.md").exists()
