"""Security: configs cannot run code, checkpoints never unpickle, paths stay inside the output."""

import pickle
import re
from pathlib import Path

import pytest
import yaml

from bbopt import Box, make_optimizer
from bbopt.cli import main
from bbopt.parallel import expand, sweep
from bbopt.serialize import load_tree

ROOT = Path(__file__).resolve().parents[2]


class _Marker:
    """Unpickling this creates a file: the proof that a loader ran pickled code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_yaml_python_tags_are_refused_and_run_nothing(tmp_path):
    marker = tmp_path / "pwned"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"problem: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path "
                   f"['{marker}']]\noptimizer: cma\nbudget: 5\n")
    assert main(["solve", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_a_pickled_checkpoint_is_rejected_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.safetensors"
    path.write_bytes(pickle.dumps(_Marker(str(marker))))
    with pytest.raises(Exception) as err:
        load_tree(path)
    assert not marker.exists()
    assert "pickle" not in type(err.value).__module__


def test_pycma_string_options_are_refused():
    with pytest.raises(ValueError, match="evaluates strings as code"):
        make_optimizer("cma", Box(0, 1, dim=2), cma_options={"popsize": "__import__('os').getpid()"})


@pytest.mark.parametrize("out", ["../escape", "/tmp/absolute-from-config", "runs/../../x"])
def test_paths_inside_configs_must_stay_below_the_working_directory(tmp_path, out, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"problem": "sphere", "optimizer": "cma", "budget": 5, "out": out}))
    assert main(["solve", str(cfg)]) == 2
    assert main(["solve", str(cfg), "--out", str(tmp_path / "chosen")]) == 0  # the user's own choice


def test_sweep_run_names_from_grid_values_never_leave_the_sweep_directory(tmp_path):
    config = {"problem": {"name": "sphere", "dim": 2}, "optimizer": "random", "budget": 5,
              "grid": {"optimizer.popsize": [1, 2], "description": ["../../../escape", "/etc/passwd", ".."]}}
    names = [name for name, _, _ in expand(config)]
    assert all("/" not in n and n not in ("..", ".") for n in names)
    rows = sweep(config, tmp_path / "sweep", n_jobs=1)
    assert all(r["status"] == "ok" for r in rows)
    made = {p.resolve() for p in tmp_path.rglob("config.yaml")}
    assert made and all((tmp_path / "sweep").resolve() in p.parents for p in made)


def test_library_code_uses_no_unsafe_loaders():
    unsafe = re.compile(r"pickle\.loads?\(|yaml\.load\((?![^)]*Loader=_StrictLoader\))|yaml\.unsafe_load|(?<![.\w])eval\(|(?<![.\w])exec\(|"
                        r"torch\.load\((?![^)]*weights_only=True)")
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "bbopt").rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if unsafe.search(line)]
    assert offenders == []
