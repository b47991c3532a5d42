"""The README's quickstart runs as written."""

import re
import shlex
from pathlib import Path

from bbopt.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_python_quickstart_blocks_run():
    namespace: dict = {}
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["result"].fun <= 1e-10 and namespace["f_best"] < 1e-6


def test_cli_quickstart_line_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    line = next(x for x in README.splitlines() if x.startswith("bbopt solve problems/quickstart.yaml"))
    args = shlex.split(line)[1:]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    assert "after 2000 evaluations (0 failed)" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "run-json"), "--json"]) == 0
    assert '"n_evals": 2000' in capsys.readouterr().out


def test_sweep_example_expands_to_nine_valid_runs():
    from bbopt.config import load_yaml
    from bbopt.parallel import expand

    runs = expand(load_yaml(Path(__file__).resolve().parent.parent / "problems" / "sweep_example.yaml"))
    assert len(runs) == 9 and len({name for name, _, _ in runs}) == 9
