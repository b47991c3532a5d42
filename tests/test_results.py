import json

import numpy as np
import pytest
import torch

from bbopt.results import read_history
from bbopt.serialize import load_tree, save_tree, write_json_atomic


def test_state_tree_round_trip_without_pickle(tmp_path):
    tree = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "nested": {"rng": {"state": 2**100 + 7}, "list": [1, None, "x", float("nan"), np.int64(4)]},
        "t": torch.arange(4, dtype=torch.bfloat16),
        "__array__": "a user key that looks like a marker",
    }
    save_tree(tmp_path / "s.safetensors", tree)
    back = load_tree(tmp_path / "s.safetensors")
    np.testing.assert_array_equal(back["a"], tree["a"])
    assert back["a"].dtype == np.float32 and isinstance(back["a"], np.ndarray)
    assert torch.equal(back["t"], tree["t"]) and back["t"].dtype == torch.bfloat16
    assert back["nested"]["rng"]["state"] == 2**100 + 7
    assert back["nested"]["list"][:3] == [1, None, "x"] and np.isnan(back["nested"]["list"][3])
    assert back["__array__"] == tree["__array__"]


def test_numpy_only_trees_do_not_need_torch_tensors(tmp_path):
    save_tree(tmp_path / "s.safetensors", {"x": np.ones(3)})
    assert isinstance(load_tree(tmp_path / "s.safetensors")["x"], np.ndarray)


def test_unsafe_values_are_refused(tmp_path):
    with pytest.raises(TypeError, match="without pickle"):
        save_tree(tmp_path / "s.safetensors", {"f": lambda: 1})
    with pytest.raises(TypeError, match="object arrays"):
        save_tree(tmp_path / "s.safetensors", {"o": np.array([{}, 1], dtype=object)})
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_a_torn_last_history_line_is_dropped_but_a_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "history.jsonl"
    lines = [json.dumps({"eval": i, "loss": float(i)}) for i in range(3)]
    path.write_text("\n".join(lines) + "\n" + '{"eval": 3, "lo')
    assert [r["eval"] for r in read_history(path)] == [0, 1, 2]
    path.write_text(lines[0] + "\n{garbage\n" + lines[1] + "\n")
    with pytest.raises(ValueError, match="line 2 is corrupt"):
        read_history(path)


def test_json_is_written_atomically(tmp_path):
    write_json_atomic(tmp_path / "best.json", {"x": np.arange(2), "loss": np.float64(1.5)})
    assert json.loads((tmp_path / "best.json").read_text()) == {"x": [0, 1], "loss": 1.5}
    assert [p.name for p in tmp_path.iterdir()] == ["best.json"]
