"""Shipped problem files: listed, run by name, copied; and all of it from an installed wheel."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from bbopt.catalog import EXAMPLES_DIR, describe, examples
from bbopt.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_the_shipped_files_are_the_repository_problem_files():
    """One source: every problems/NAME.yaml is shipped under its name, nothing else is."""
    assert sorted(examples()) == sorted(p.stem for p in (ROOT / "problems").glob("*.yaml"))
    assert EXAMPLES_DIR.resolve() == (ROOT / "problems").resolve()


def test_examples_lists_each_file_on_one_line(capsys):
    assert main(["examples"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[0]: line for line in lines[:-1]}
    assert set(listed) == set(examples())
    assert "10-D Rosenbrock with CMA-ES" in listed["quickstart"]
    assert all(len(line) <= 140 for line in lines)


def test_description_key_wins_over_the_leading_comment(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("# A comment. More.\ndescription: What it does\nproblem: {name: sphere}\n")
    assert describe(path) == "What it does"
    path.write_text("# First sentence (Sun et al., ICML 2022) of\n# two lines. Second one.\nproblem: {name: sphere}\n")
    assert describe(path) == "First sentence (Sun et al., ICML 2022) of two lines."


def test_solve_by_name_and_a_path_wins(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["solve", "quickstart", "--set", "budget=50", "--out", "by-name", "--json"]) == 0
    assert '"n_evals": 50' in capsys.readouterr().out
    (tmp_path / "quickstart").write_text("problem: {name: sphere, dim: 2}\noptimizer: {name: random}\nbudget: 7\n")
    assert main(["solve", "quickstart", "--out", "by-path", "--json"]) == 0  # the file in the cwd wins
    assert '"n_evals": 7' in capsys.readouterr().out
    assert main(["solve", "no_such_example"]) == 2
    assert "shipped examples (bbopt examples): " in capsys.readouterr().err


def test_init_writes_a_copy_and_refuses_to_overwrite(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "quickstart"]) == 0
    assert (tmp_path / "quickstart.yaml").read_text() == (EXAMPLES_DIR / "quickstart.yaml").read_text()
    assert main(["init", "quickstart"]) == 2
    assert "quickstart.yaml exists" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    assert main(["init", "sweep_example", "mine"]) == 0 and (tmp_path / "mine" / "sweep_example.yaml").is_file()
    assert main(["init", "quickstart", "edited.yaml"]) == 0 and (tmp_path / "edited.yaml").is_file()
    assert main(["init", "nope"]) == 2


def _venv_with_wheel(tmp_path: Path) -> Path:
    """A fresh venv holding the wheel built from this tree; its dependencies come from the running
    environment's site-packages (a path entry: the editable bbopt there is not activated)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "bbopt", "problems"):
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(item, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"),
                    str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("bbopt-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([python, "-m", "pip", "--disable-pip-version-check", "-q", "install", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, cwd=tmp_path)  # not the checkout: its egg-info
    (Path(purelib) / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")  # after: pip sees only the wheel
    return venv


def test_an_installed_wheel_runs_its_examples_outside_the_repository(tmp_path):
    venv = _venv_with_wheel(tmp_path)
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def bbopt(*args: str) -> str:
        proc = subprocess.run([str(venv / "bin" / "bbopt"), *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    located = subprocess.run([str(venv / "bin" / "python"), "-c", "import bbopt; print(bbopt.__file__)"],
                             cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    assert located.startswith(str(venv)), located  # the wheel's bbopt, not the checkout's
    assert "quickstart" in bbopt("examples")
    summary = bbopt("solve", "quickstart", "--out", "run")
    n_evals = re.search(r"stopped on target after (\d+) evaluations \(0 failed\)", summary).group(1)
    assert "best loss " in summary and "bbopt resume run" in summary
    shown = bbopt("show", "run")
    assert "name: rosenbrock" in shown and f"{n_evals} / 6000 evaluations" in shown
    assert "plot" in bbopt("plot", "run") and (work / "run" / "best.png").stat().st_size > 1000
    bbopt("init", "quickstart")
    assert (work / "quickstart.yaml").is_file()
