"""Tiny random transformers built from a config (no download), for the prompt-tuning tests."""

import numpy as np
import torch
import transformers

VOCAB = 30522  # the packaged MiniLM tokenizer's vocabulary, so real text can be tokenised


def build(kind: str, layers: int = 3, seed: int = 0):
    """A tiny random model: 'bert' (encoder), 'bert-mlm', 'roberta-mlm' or 'gpt2'."""
    # initializer_range 0.2 (not 0.02): random weights large enough that prompts and labels move the logits
    common = dict(num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64, hidden_size=32,
                  initializer_range=0.2)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if kind == "bert":
            model = transformers.BertModel(transformers.BertConfig(vocab_size=VOCAB, **common))
        elif kind == "bert-mlm":
            model = transformers.BertForMaskedLM(transformers.BertConfig(vocab_size=VOCAB, **common))
        elif kind == "roberta-mlm":
            model = transformers.RobertaForMaskedLM(
                transformers.RobertaConfig(vocab_size=VOCAB, pad_token_id=0, **common))
        elif kind == "gpt2":
            model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
                vocab_size=VOCAB, n_embd=32, n_layer=layers, n_head=2, bos_token_id=101, eos_token_id=102,
                initializer_range=0.2))
        else:
            raise ValueError(kind)
    return model.eval()


def random_z(problem, n, seed=0, scale=1.0):
    """``(n, D)`` standard normal candidates for ``problem``."""
    return scale * np.random.default_rng(seed).standard_normal((n, problem.space.dim))


#: verbalizer settings that fit each tiny model
VERBALIZERS = {
    "bert": {"verbalizer": "cosine", "anchors": ["bad terrible awful", "good great lovely"]},
    "roberta-mlm": {"verbalizer": "lm", "label_words": ["bad", "great"]},
    "gpt2": {"verbalizer": "lm", "label_words": ["bad", "great"]},
}
