"""Text tasks from the user's files (``task:``): one loader for ``prompt-tuning`` and
``zo-text-classification``; bad files exit 2 naming the file and the column; a run on a local
model folder writes test accuracy into its run directory."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from bbopt.cli import main
from bbopt.problems.text_tasks import load_task

from .tiny import build

ROOT = Path(__file__).resolve().parents[2]
TRAIN, TEST = ROOT / "tests" / "data" / "tweets_train.csv", ROOT / "tests" / "data" / "tweets_test.csv"
ROWS = [(f"review number {i} " + ("awful" if i % 3 == 0 else "fine" if i % 3 == 1 else "superb"), str(i % 3 * 2 + 1))
        for i in range(30)]  # stars "1", "3", "5": 10 each


def write_rows(path: Path, rows, header=("review", "stars")) -> str:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(dict(zip(header, r))) + "\n" for r in rows), encoding="utf-8")
    else:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, delimiter="\t" if path.suffix == ".tsv" else ",")
            writer.writerow(header)
            writer.writerows(rows)
    return str(path)


def test_csv_tsv_and_jsonl_give_the_same_task(tmp_path):
    tasks = [load_task({"train": write_rows(tmp_path / f"d.{ext}", ROWS), "text": "review", "label": "stars"},
                       shots=2, seed=3) for ext in ("csv", "tsv", "jsonl")]
    for task in tasks[1:]:
        assert task.labels == tasks[0].labels == ("1", "3", "5")
        for name in ("train", "dev", "test"):
            assert task.splits[name][0] == tasks[0].splits[name][0]
            assert np.array_equal(task.splits[name][1], tasks[0].splits[name][1])


def test_label_names_map_to_ids_with_their_anchors_and_words(tmp_path):
    rows = [(t, {"1": "10", "3": "2", "5": "9"}[s]) for t, s in ROWS]
    path = write_rows(tmp_path / "d.csv", rows)
    task = load_task({"train": path, "text": "review", "label": "stars"}, shots=None, seed=0)
    assert task.labels == ("2", "9", "10")  # integer labels sort as numbers
    assert task.anchors == ["This is 2.", "This is 9.", "This is 10."] and task.label_words == ["2", "9", "10"]
    texts, y = task.splits["train"]
    assert [("2", "9", "10")[k] for k in y] == [s for _, s in rows] and texts == [t for t, _ in rows]
    given = {"10": {"anchor": "A rave.", "word": "great"}, "2": {"word": "bad"}, "9": None}
    task = load_task({"train": path, "text": "review", "label": "stars", "labels": given}, shots=None, seed=0)
    assert task.labels == ("10", "2", "9")  # the order given is the id order
    assert task.anchors == ["A rave.", "This is 2.", "This is 9."] and task.label_words == ["great", "bad", "9"]
    assert [task.labels[k] for k in task.splits["train"][1]] == [s for _, s in rows]


def test_seeded_k_per_class_split_and_separate_files(tmp_path):
    path = write_rows(tmp_path / "d.csv", ROWS)
    spec = {"train": path, "text": "review", "label": "stars"}
    a, b, c = (load_task(spec, shots=3, seed=s) for s in (0, 0, 1))
    for name in ("train", "dev"):
        assert np.bincount(a.splits[name][1]).tolist() == [3, 3, 3]
        assert a.splits[name][0] == b.splits[name][0]
    assert a.splits["train"][0] != c.splits["train"][0]
    parts = [set(a.splits[n][0]) for n in ("train", "dev", "test")]
    assert sum(map(len, parts)) == len(ROWS) == len(set.union(*parts))  # disjoint, the rest is test
    dev, test = write_rows(tmp_path / "dev.csv", ROWS[:6]), write_rows(tmp_path / "test.jsonl", ROWS[6:])
    d = load_task({**spec, "dev": dev, "test": test}, shots=3, seed=0)
    assert d.splits["dev"][0] == [t for t, _ in ROWS[:6]] and len(d.splits["test"][0]) == 24
    assert np.bincount(d.splits["train"][1]).tolist() == [3, 3, 3]


def test_no_test_rows_means_no_test_split_for_packaged_and_file_tasks(tmp_path):
    packaged = load_task("tweets", 16, 0, n_test=0)
    assert set(packaged.splits) == {"train", "dev"} and len(packaged.splits["train"][0]) == 32
    spec = {"train": write_rows(tmp_path / "d.csv", ROWS), "text": "review", "label": "stars"}
    assert set(load_task(spec, shots=3, seed=0, n_test=0).splits) == {"train", "dev"}


# ------------------------------------------------------------------ bad files: exit 2 naming file and column
def bad_task(tmp_path, case):
    """(task block, what the one-line error must name) for each kind of bad file."""
    good = write_rows(tmp_path / "good.csv", ROWS)
    if case == "missing column":
        return {"train": write_rows(tmp_path / "reviews.csv", ROWS, ("body", "stars"))}, ["reviews.csv", "'review'"]
    if case == "missing column jsonl":
        path = tmp_path / "reviews.jsonl"
        path.write_text('{"review": "ok", "stars": "1"}\n{"stars": "3"}\n', encoding="utf-8")
        return {"train": str(path)}, ["reviews.jsonl", "'review'", "line 2"]
    if case == "empty label":
        return {"train": write_rows(tmp_path / "reviews.csv", ROWS[:5] + [("no label here", "")])}, \
            ["reviews.csv", "'stars'", "line 7"]
    if case == "one class only":
        return {"train": write_rows(tmp_path / "reviews.csv", [r for r in ROWS if r[1] == "3"])}, \
            ["reviews.csv", "'stars'", "one class"]
    if case == "fewer than k":
        return {"train": write_rows(tmp_path / "reviews.csv", [r for r in ROWS if r[1] != "5"] + ROWS[2:6])}, \
            ["reviews.csv", "'stars'", "'5'", "has 2 examples"]
    if case == "not utf-8":
        path = tmp_path / "reviews.csv"
        path.write_bytes(b"review,stars\n\xff\xfe bad bytes,1\n")
        return {"train": str(path)}, ["reviews.csv", "UTF-8"]
    if case == "no file":
        return {"train": str(tmp_path / "nowhere.csv")}, ["nowhere.csv", "does not exist"]
    if case == "a folder":
        (tmp_path / "reviews").mkdir()
        return {"train": str(tmp_path / "reviews")}, ["reviews", "is a folder"]
    if case == "bad json":
        path = tmp_path / "reviews.jsonl"
        path.write_text('{"review": "ok", "stars": "1"}\n{"review": oops}\n', encoding="utf-8")
        return {"train": str(path)}, ["reviews.jsonl", "line 2", "not JSON"]
    if case == "unknown label in test":
        return {"train": good, "test": write_rows(tmp_path / "test.csv", [("fine", "4")])}, \
            ["test.csv", "'stars'", "'4'"]
    raise ValueError(case)


CASES = ["missing column", "missing column jsonl", "empty label", "one class only", "fewer than k", "not utf-8",
         "no file", "a folder", "bad json", "unknown label in test"]



@pytest.mark.parametrize("problem", ["prompt-tuning", "zo-text-classification"])
@pytest.mark.parametrize("case", CASES)
def test_bad_file_exits_2_naming_file_and_column(case, problem, tmp_path, capsys):
    task, expected = bad_task(tmp_path, case)
    config = {"problem": {"name": problem, "model": "minilm", "shots": 4,
                          "task": {"text": "review", "label": "stars", **task}},
              "optimizer": "cma" if problem == "prompt-tuning" else "mezo", "budget": 2}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["solve", str(tmp_path / "run.yaml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert all(word in err for word in expected), err
    assert not out.exists()


def test_task_block_errors_name_the_key(tmp_path, capsys):
    for task, expected in [({"train": str(TRAIN), "text": "tweet"}, "task.label is required"),
                           ({"train": str(TRAIN), "text": "tweet", "label": "sentiment", "column": "x"},
                            "no key 'column'"),
                           ({"train": str(TRAIN), "text": "tweet", "label": "sentiment", "labels": {"good": 3}},
                            "task.labels.good")]:
        config = {"problem": {"name": "prompt-tuning", "task": task}, "optimizer": "cma", "budget": 2}
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
        assert main(["solve", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "run")]) == 2
        assert expected in capsys.readouterr().err


# ------------------------------------------------------------------ end to end on a local model folder
@pytest.fixture(scope="module")
def folders(tmp_path_factory, tokenizer):
    """Tiny random checkpoints saved as local HF folders: a BERT encoder and a GPT-2 causal LM."""
    out = {}
    for kind in ("bert", "gpt2"):
        path = tmp_path_factory.mktemp(kind)
        build(kind, layers=2).save_pretrained(path)
        tokenizer.save_pretrained(path)
        out[kind] = str(path)
    return out


TASK = {"train": str(TRAIN), "test": str(TEST), "text": "tweet", "label": "sentiment",
        "labels": {"negative": {"anchor": "This is negative.", "word": "bad"},
                   "positive": {"anchor": "This is positive.", "word": "great"}}}
RUNS = {
    "bbt": ({"name": "prompt-tuning", "n_prompt": 2, "dim": 4, "max_text_tokens": 16, "dev_every": 4},
            {"name": "cma", "popsize": 4}, "bert"),
    "bbtv2": ({"name": "prompt-tuning", "deep": True, "n_prompt": 2, "dim": 4, "max_text_tokens": 16,
               "dev_every": 4}, {"name": "block", "inner_options": {"popsize": 4}}, "bert"),
    "bbt-causal-lm": ({"name": "prompt-tuning", "verbalizer": "lm", "n_prompt": 2, "dim": 4,
                       "max_text_tokens": 16, "dev_every": 4}, {"name": "cma", "popsize": 4}, "gpt2"),
    "mezo-encoder": ({"name": "zo-text-classification", "max_length": 16, "batch_size": 8},
                     {"name": "mezo", "lr": 1e-4, "eps": 1e-3}, "bert"),
    "mezo-causal-lm": ({"name": "zo-text-classification", "verbalizer": "lm", "max_length": 16, "batch_size": 8},
                       {"name": "mezo", "lr": 1e-4, "eps": 1e-3}, "gpt2"),
}


@pytest.mark.parametrize("run", RUNS)
def test_solve_from_a_csv_and_a_model_folder_writes_test_accuracy(run, folders, tmp_path, capsys):
    problem, optimizer, kind = RUNS[run]
    config = {"problem": {**problem, "model": folders[kind], "task": TASK, "shots": 4}, "optimizer": optimizer,
              "budget": 8, "seed": 0}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["solve", str(tmp_path / "run.yaml"), "--out", str(out)]) == 0, capsys.readouterr().err
    scores = json.loads((out / "scores.json").read_text())
    assert 0.0 <= scores["test/accuracy"] <= 1.0 and "dev/accuracy" in scores
    if problem["name"] == "prompt-tuning":
        report = json.loads((out / "prompt_report.json").read_text())
        assert report["scores"]["test"]["n"] == 200 and report["settings"]["labels"] == ["negative", "positive"]
        assert scores["test/accuracy"] == report["scores"]["test"]["accuracy"]


def test_zo_text_classification_is_listed_with_its_options(capsys):
    assert main(["list", "--problem", "zo-text-classification"]) == 0
    out = capsys.readouterr().out
    assert "task=" in out and "model=" in out and "verbalizer=" in out
