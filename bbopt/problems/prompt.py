"""BBT / BBTv2: black-box prompt tuning of a frozen language model, as a bbopt Problem.

BBT (Sun et al., ICML 2022, arXiv 2201.03514): search z ∈ R^d; the prompt p = A·z (A fixed,
random, N(0, s²), s = α·σ̂/(√d·σ₀)) is added to the embeddings of n placeholder slots; the
loss is the verbalizer's cross-entropy (or hinge, or −accuracy) over a k-shot training set.
BBTv2 (Sun et al., EMNLP 2022, arXiv 2205.11200): one z_l and one A_l per layer, prompts
added to the hidden states before every layer; a candidate is (z_0, …, z_{L−1}) and the
space declares those blocks (``space.blocks``) for the ``block`` strategy, which runs one
CMA-ES per layer in turn (divide and conquer).

The projections are scaled for CMA-ES steps of ``sigma0`` in z, so the problem declares
the optimizer settings it is built for (:meth:`PromptTuningProblem.recommended_options`):
``cma`` gets BBT's (σ₀ = ``sigma0``, population 20, no restarts, full covariance) and
``block`` BBTv2's (that CMA-ES per layer, one generation per visit), unless the user sets them.

One call = one forward of one candidate over the whole training split. ``evaluate`` scores
a population in batched forwards (candidates × examples folded into the batch dimension,
chunked to ``max_rows``) that share the forward up to the first layer whose prompt differs.
Every ``dev_every`` calls the best-training candidate so far is scored on the dev split and
the best-dev one kept; ``finalize`` scores the test split with it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bbopt.batch import Batch, candidates_of
from bbopt.options import OptionError, check_options, nonnegative, one_of, positive
from bbopt.problem import Problem
from bbopt.problems.fewshot import EncodedSplit, encode, start_ids
from bbopt.problems.prompt_hooks import InjectionPlan, PromptInjector
from bbopt.problems.prompt_projection import RandomProjection, clipped_std, projection_std
from bbopt.problems.prompt_state import PromptTracker
from bbopt.problems.prompt_tasks import is_causal
from bbopt.problems.verbalizers import (
    LOSSES,
    CentroidVerbalizer,
    CosineVerbalizer,
    LMHeadVerbalizer,
    Verbalizer,
    label_token_ids,
    losses_from_logits,
    mean_pool,
)
from bbopt.seeding import as_seed_sequence, child_seed
from bbopt.spaces import Box

#: CMA-ES population of the reference code (BBT and BBTv2, Oct 2022)
BBT_POPSIZE = 20
_TEMPLATES = {"mask": "{text} It was {mask} .", "last": "{text} It was", "none": "{text}"}


class PromptTuningProblem(Problem):
    """Tune prompts of a frozen ``model`` on ``train = (texts, labels)``; labels are ``0..K-1``.

    ``deep=False``: BBT (one block, the input embeddings); ``deep=True``: BBTv2 (one block
    per layer). ``verbalizer``: ``"cosine"`` (needs ``anchors``), ``"centroid"``, ``"lm"``
    (needs ``label_words``; masked or causal LM) or a :class:`Verbalizer`. ``bound=None``
    leaves z unbounded (CMA-ES then works in z's own units); ``sigma0`` scales the
    projections and is what :meth:`recommended_options` gives CMA-ES.

    The model is used as given: its parameters are not frozen (forwards run under
    ``torch.inference_mode``) and its train/eval flags are restored after every forward,
    which runs in eval mode (dropout off). ``device``: where the model runs; ``None`` keeps
    it where it is, another device moves it there (``nn.Module.to`` moves in place).
    """

    evaluate_has_side_effects = True  # best-train / best-dev tracking is checkpointed state

    def __init__(self, model: Any, tokenizer: Any, train: tuple, dev: tuple | None = None, test: tuple | None = None,
                 *, deep: bool = False, n_prompt: int = 10, dim: int = 100, alpha: float = 1.0, sigma0: float = 1.0,
                 bound: float | None = None, verbalizer: str | Verbalizer = "cosine", anchors: list[str] | None = None,
                 label_words: list[str] | None = None, scale: float = 20.0, template: str | None = None,
                 max_text_tokens: int = 48, loss: str = "ce", margin: float = 2.0, dev_every: int = 100,
                 pooling: str = "text", max_rows: int = 128, share_prefix: bool = True, projection_cache_mb: float = 256.0,
                 device: str | None = None, label_names: list[str] | None = None, seed: int = 0):
        _check_settings(n_prompt=n_prompt, dim=dim, max_text_tokens=max_text_tokens, dev_every=dev_every,
                        max_rows=max_rows, alpha=alpha, sigma0=sigma0, margin=margin, bound=bound, loss=loss,
                        pooling=pooling)
        self.pooling = pooling
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device)
        self._base = getattr(model, "base_model", model)
        self._call = {"use_cache": False} if "use_cache" in inspect.signature(self._base.forward).parameters else {}
        self.tokenizer = tokenizer
        self.deep, self.n_prompt, self.dim = bool(deep), int(n_prompt), int(dim)
        self.loss, self.margin, self.dev_every = loss, float(margin), int(dev_every)
        self.max_rows, self.share_prefix = int(max_rows), bool(share_prefix)
        self.injector = PromptInjector(model, start=len(start_ids(tokenizer)), n_prompt=self.n_prompt)
        self.hidden = int(model.get_input_embeddings().weight.shape[1])
        self.n_blocks = self.injector.n_layers if self.deep else 1
        self.verbalizer = _make_verbalizer(verbalizer, model, tokenizer, anchors, label_words, scale, train)
        self.label_names = [str(n) for n in label_names] if label_names is not None else None
        if self.label_names is not None and len(self.label_names) != self.verbalizer.n_classes:
            raise OptionError("label_names", f"prompt-tuning: {len(self.label_names)} label_names for "
                                             f"{self.verbalizer.n_classes} classes")
        self.splits = self._encode({"train": train, "dev": dev, "test": test}, template, max_text_tokens)
        self.verbalizer.prepare(self)
        self.sigma_hat = self._sigma_hat()
        self.sigma0 = float(sigma0)
        self.projections = self._projections(alpha, sigma0, seed, projection_cache_mb)
        limit = math.inf if bound is None else float(bound)
        self.space = Box(-limit, limit, dim=self.n_blocks * self.dim, blocks=self.blocks)
        self.tracker = PromptTracker(self.dev_every if "dev" in self.splits else 0)

    # ---------------------------------------------------------------- protocol
    @property
    def blocks(self) -> list[tuple[int, int]]:
        """``[start, stop)`` index ranges of z, one per prompt block (layer)."""
        return [(b * self.dim, (b + 1) * self.dim) for b in range(self.n_blocks)]

    def recommended_options(self, optimizer: str) -> dict:
        """BBT's CMA-ES for ``cma`` and BBTv2's divide and conquer for ``block`` (a run applies
        these under the user's options). σ₀ is the ``sigma0`` the projections are scaled for,
        in z's units (as a fraction of the box width when ``bound`` is set, since CMA-ES then
        searches the unit cube); popsize 20, no restarts and full covariance are the reference
        code's settings (BBT ``bbt.py`` and BBTv2 ``deepbbt.py``, Oct 2022)."""
        width = float(self.space.width[0]) if self.space.bounded else 1.0
        cma = {"sigma0": self.sigma0 / width, "popsize": BBT_POPSIZE, "restarts": 0, "diagonal": False}
        if optimizer == "cma":
            return cma
        if optimizer == "block":
            return {"inner": "cma", "inner_options": cma, "generations_per_visit": 1}
        return {}

    def evaluate(self, batch: Batch | Any) -> np.ndarray:
        """Training loss of each candidate ``z: (P, n_blocks·dim)`` -> ``(P,)``; one call per candidate."""
        z = self.space.validate(candidates_of(batch))
        loss, _ = self.population_scores(z, "train")
        self.tracker.record(z, loss, self._dev_score)
        return loss

    def round_metrics(self, info: Any) -> dict | None:
        """A ``metrics.jsonl`` line per population: its mean training loss and, when a dev check
        ran in this round, the dev accuracy and loss of the best-training prompt it scored."""
        losses = np.asarray(info.outcomes.losses, dtype=float)
        losses = losses[np.isfinite(losses)]
        out = {"train_loss": float(losses.mean())} if losses.size else {}
        log = self.tracker.log
        if log and log[-1][0] > self.tracker.n_calls - len(info.batch):
            out.update({"dev/accuracy": log[-1][2], "dev/loss": log[-1][3]})
        return out or None

    def score(self, z: Any = None, split: str = "test") -> dict:
        """Loss and accuracy of one candidate (default z = 0, the untuned prompt) on a split."""
        if split not in self.splits:
            raise ValueError(f"split must be one of {sorted(self.splits)}, got {split!r}")
        z = np.zeros(self.space.dim) if z is None else self.space.validate(z)[0]
        loss, acc = self.population_scores(z[None], split)
        return {"loss": float(loss[0]), "accuracy": float(acc[0]), "n": len(self.splits[split])}

    def finalize(self, result: Any = None, run_dir: str | Path | None = None) -> dict:
        """Score the best-dev prompt (else the run's best) on every split; write ``prompt_report.json``
        and, like the ZO fine-tuning problems, ``scores.json`` (``{"test/accuracy": …, …}``)."""
        z, source = self.tracker.selected(None if result is None else getattr(result, "x", None))
        if z is None:
            z, source = np.zeros(self.space.dim), "zero prompt (nothing evaluated)"
        scores = {name: self.score(z, name) for name in self.splits}
        report: dict[str, Any] = {"selected": source, "n_calls": self.tracker.n_calls, "scores": scores,
                                  "dev_history": self.tracker.history(), "settings": self.describe()}
        if run_dir is not None:
            from bbopt.serialize import write_json_atomic

            write_json_atomic(Path(run_dir) / "prompt_report.json", report)
            write_json_atomic(Path(run_dir) / "scores.json", {f"{split}/{metric}": value
                                                              for split, row in scores.items()
                                                              for metric, value in row.items() if metric != "n"})
        return report

    def state_dict(self) -> dict:
        return {"tracker": self.tracker.state_dict(), "sigma_hat": np.asarray(self.sigma_hat)}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        if not np.allclose(np.asarray(state["sigma_hat"]), self.sigma_hat, rtol=1e-6):
            raise ValueError("load_state_dict: the checkpoint was made with another model or training split")
        self.tracker.load_state_dict(state["tracker"])

    def describe(self) -> dict:
        return {"problem": "PromptTuningProblem", "mode": "bbtv2" if self.deep else "bbt",
                "model": type(self.model).__name__, "n_blocks": self.n_blocks, "n_prompt": self.n_prompt,
                "dim": self.dim, "verbalizer": type(self.verbalizer).__name__, "loss": self.loss,
                "labels": self.label_names,
                "splits": {k: len(v) for k, v in self.splits.items()}, "sigma_hat": list(self.sigma_hat),
                "space": self.space.describe() if self.space.dim <= 64 else f"Box(dim={self.space.dim})"}

    # ---------------------------------------------------------------- forwards
    def population_scores(self, z: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Loss and accuracy ``(P,)`` of ``z: (P, D)`` on a split, in batched chunked forwards."""
        logits = self.population_logits(z, split)
        with torch.inference_mode():
            loss, acc = losses_from_logits(logits, self.splits[split].labels, self.loss, self.margin)
        return loss.double().cpu().numpy(), acc.double().cpu().numpy()

    def population_logits(self, z: np.ndarray, split: str) -> torch.Tensor:
        """Class logits ``(P, E, K)`` of ``z: (P, D)`` on a split's E examples (float32)."""
        data = self.splits[split]
        prompts = self._block_prompts(z)
        n_ex = len(data)
        logits = torch.empty(len(z), n_ex, self.verbalizer.n_classes, device=self.device)
        with torch.inference_mode():
            for cands, ex in self._chunks(len(z), n_ex):
                logits[cands[:, None], ex[None, :]] = self._chunk_logits(prompts, cands, ex, data).float()
        return logits

    def prompt_logits(self, prompts: dict[int, torch.Tensor], split: str = "train") -> torch.Tensor:
        """Differentiable logits ``(G, E, K)`` for explicit prompts ``{block: (G, n, H)}`` (gradient baselines)."""
        data = self.splits[split]
        groups = max((p.shape[0] for p in prompts.values()), default=1)
        ids, mask, pos = data.rows(torch.arange(len(data), device=self.device))
        plan = InjectionPlan({b: p.to(self.device) for b, p in prompts.items()})
        hidden = self._run(ids.repeat(groups, 1), mask.repeat(groups, 1), plan)
        pool = self.pool_mask(mask).repeat(groups, 1)
        return self.verbalizer.logits(hidden, pool, pos.repeat(groups)).view(groups, len(data), -1)

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Mean-pooled output ``(m, H)`` of plain texts (no slots, no prompt): verbalizer anchors."""
        enc = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            pooled = mean_pool(self._run(enc["input_ids"], enc["attention_mask"], InjectionPlan()),
                               enc["attention_mask"])
        return pooled.clone()  # a normal tensor again, usable in autograd (gradient baselines)

    def embed_split(self, split: str) -> torch.Tensor:
        """Mean-pooled output ``(N, H)`` of a split's rows at z = 0."""
        data = self.splits[split]
        out = []
        with torch.inference_mode():
            for ex in torch.arange(len(data), device=self.device).split(self.max_rows):
                ids, mask, _ = data.rows(ex)
                out.append(mean_pool(self._run(ids, mask, InjectionPlan()), self.pool_mask(mask)))
            pooled = torch.cat(out)
        return pooled.clone()

    def pool_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """The tokens a pooling verbalizer averages ``(R, T)``: the real tokens but the prompt slots.

        The prompt acts on the text through attention, as in BBT, where the verbalizer reads one
        output position; averaging the slots' own outputs in would move the sentence embedding
        away from the model's zero-shot one before any search (``pooling="all"`` does that)."""
        if self.pooling == "all":
            return mask
        pool = mask.clone()
        pool[:, self.injector.start:self.injector.start + self.n_prompt] = 0
        return pool

    def _run(self, ids: torch.Tensor, mask: torch.Tensor, plan: InjectionPlan) -> torch.Tensor:
        with self.injector.inject(plan), eval_mode(self.model):
            return self._base(input_ids=ids, attention_mask=mask, **self._call).last_hidden_state

    def _block_prompts(self, z: np.ndarray) -> list[tuple[torch.Tensor | None, np.ndarray]]:
        """Per block: distinct prompts ``(U, n, H)`` (None when all zero) and each candidate's row ``(P,)``."""
        dtype = self.model.get_input_embeddings().weight.dtype
        out = []
        for b, proj in enumerate(self.projections):
            uniq, inverse = np.unique(z[:, b * self.dim:(b + 1) * self.dim], axis=0, return_inverse=True)
            prompts = None if not uniq.any() else proj(uniq).view(-1, self.n_prompt, self.hidden).to(self.device, dtype)
            out.append((prompts, inverse.reshape(-1)))
        return out

    def _chunks(self, n_cand: int, n_ex: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(candidates, examples) index pairs with at most ``max_rows`` rows each (unless one example alone)."""
        cands, ex = torch.arange(n_cand, device=self.device), torch.arange(n_ex, device=self.device)
        if n_ex <= self.max_rows:
            per = max(1, self.max_rows // n_ex)
            return [(c, ex) for c in cands.split(per)]
        return [(c[None], e) for c in cands for e in ex.split(self.max_rows)]

    def _chunk_logits(self, prompts: list, cands: torch.Tensor, ex: torch.Tensor, data: EncodedSplit) -> torch.Tensor:
        """Logits ``(c, e, K)`` of candidates × examples; layers before the first differing block run once."""
        ids, mask, pos = data.rows(ex)
        c, e = len(cands), len(ex)
        cand_np = cands.cpu().numpy()
        differs = [len(np.unique(inverse[cand_np])) > 1 for _, inverse in prompts]
        shared = next((b for b, d in enumerate(differs) if d), self.n_blocks) if self.share_prefix or c == 1 else 0
        plan = InjectionPlan()
        for b, (uniq, inverse) in enumerate(prompts):
            if uniq is not None:
                plan.prompts[b] = uniq[inverse[cand_np[:1] if b < shared else cand_np]]
        if shared == 0:
            ids = ids.repeat(c, 1)
        elif shared < self.n_blocks:
            plan.expand_at, plan.copies, plan.base_rows = shared, c, e
        hidden = self._run(ids, mask.repeat(c, 1) if shared == 0 else mask, plan)
        rows = hidden.shape[0]
        pool = self.pool_mask(mask).repeat(rows // e, 1)
        logits = self.verbalizer.logits(hidden, pool, pos.repeat(rows // e))
        return logits.repeat(c * e // rows, 1).view(c, e, -1)

    def _encode(self, data: dict, template: str | None, max_text_tokens: int) -> dict[str, EncodedSplit]:
        """Each given split ``(texts, labels)`` as slotted token rows on the device."""
        template = template or _TEMPLATES[self.verbalizer.score]
        splits = {}
        for name, pair in data.items():
            if pair is not None:
                texts, labels = _check_data(name, pair, self.verbalizer.n_classes)
                splits[name] = _to(encode(self.tokenizer, texts, labels, template=template, n_prompt=self.n_prompt,
                                          max_text_tokens=max_text_tokens, score=self.verbalizer.score), self.device)
        return splits

    def _projections(self, alpha: float, sigma0: float, seed: int, cache_mb: float) -> list[RandomProjection]:
        """One A_b per block, std α·σ̂_b/(√d·σ₀), stored only when all of them fit in ``cache_mb``."""
        out_dim = self.n_prompt * self.hidden
        cache = self.n_blocks * out_dim * self.dim * 4 <= cache_mb * 2**20
        seq = as_seed_sequence(seed)
        return [RandomProjection(out_dim, self.dim, projection_std(alpha, s, self.dim, sigma0), child_seed(seq, b),
                                 cache=cache) for b, s in enumerate(self.sigma_hat)]

    def _dev_score(self, z: np.ndarray) -> tuple[float, float]:
        loss, acc = self.population_scores(z[None], "dev")
        return float(acc[0]), float(loss[0])

    def _sigma_hat(self) -> list[float]:
        """σ̂ per block: word-embedding std (block 0); clipped std of each layer's input hidden states at z = 0."""
        weight = self.model.get_input_embeddings().weight.detach().double()
        sigmas = [float(weight.std(unbiased=False))]
        if self.n_blocks > 1:
            data = self.splits["train"]
            per_layer: list[list[torch.Tensor]] = [[] for _ in range(self.n_blocks)]
            with torch.inference_mode(), eval_mode(self.model):
                for ex in torch.arange(len(data), device=self.device).split(self.max_rows):
                    ids, mask, _ = data.rows(ex)
                    states = self._base(input_ids=ids, attention_mask=mask, output_hidden_states=True,
                                        **self._call).hidden_states
                    for layer in range(1, self.n_blocks):
                        per_layer[layer].append(states[layer][mask.bool()].double().cpu())
            sigmas += [clipped_std(torch.cat(per_layer[b]).numpy()) for b in range(1, self.n_blocks)]
        return sigmas

    # ---------------------------------------------------------------- factory
    @classmethod
    def from_pretrained(cls, model: str = "minilm", task: str | dict = "tweets", shots: int | None = 16,
                        n_test: int | None = None, seed: int = 0, data_seed: int | None = None, test_seed: int = 0,
                        **options: Any) -> PromptTuningProblem:
        """A problem on a local model (``"minilm"`` or a folder) and a task: ``"tweets"`` (packaged)
        or a ``task:`` mapping of files (:mod:`bbopt.problems.text_tasks`), split by the few-shot protocol.

        ``options`` are this class's keyword settings (``deep``, ``n_prompt``, ``dim``, ...);
        ``seed`` draws the projections and, unless ``data_seed`` is given, the few-shot split
        (the test split depends on ``test_seed`` only). The task fills ``anchors`` /
        ``label_words`` unless given. The task is read before the model loads, so a bad file
        fails at once.
        """
        from bbopt.problems.prompt_tasks import load_model
        from bbopt.problems.text_tasks import load_task

        check_options(cls.__init__, options, "problem 'prompt-tuning'",
                      skip=("self", "model", "tokenizer", "train", "dev", "test", "seed", "label_names"))
        data = load_task(task, shots, seed if data_seed is None else data_seed, n_test, test_seed)
        options.setdefault("verbalizer", "cosine")
        if options["verbalizer"] == "cosine":
            options.setdefault("anchors", data.anchors)
        if options["verbalizer"] == "lm":
            options.setdefault("label_words", data.label_words)
        lm, tokenizer = load_model(model, with_lm_head=options["verbalizer"] == "lm")
        splits = data.splits
        return cls(lm, tokenizer, splits["train"], splits.get("dev"), splits.get("test"), seed=seed,
                   label_names=list(data.labels), **options)


def _make_verbalizer(verbalizer: Any, model: Any, tokenizer: Any, anchors: Any, label_words: Any, scale: float,
                     train: tuple) -> Verbalizer:
    if isinstance(verbalizer, Verbalizer):
        return verbalizer
    if verbalizer == "cosine":
        if anchors is None:
            raise ValueError("verbalizer 'cosine' needs anchors: one label sentence per class")
        return CosineVerbalizer(list(anchors), scale)
    if verbalizer == "centroid":
        return CentroidVerbalizer(int(np.max(np.asarray(train[1]))) + 1, scale)
    if verbalizer == "lm":
        if not label_words:
            raise ValueError("verbalizer 'lm' needs label_words: one single-token word per class")
        return LMHeadVerbalizer(label_token_ids(tokenizer, label_words), causal=is_causal(model))
    raise ValueError(f"verbalizer must be 'cosine', 'centroid', 'lm' or a Verbalizer, got {verbalizer!r}")


def _check_data(name: str, data: Any, n_classes: int) -> tuple[list[str], np.ndarray]:
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be a pair (texts, labels)")
    texts, labels = list(data[0]), np.asarray(data[1])
    if not texts or len(texts) != len(labels) or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"{name}: texts must be a non-empty list of strings with one label each")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"{name}: labels must be integers in 0..{n_classes - 1}")
    return texts, labels


def _check_settings(**values: Any) -> None:
    owner = "prompt-tuning"
    for key in ("n_prompt", "dim", "max_text_tokens", "max_rows"):
        positive(values[key], key, owner, integer=True)
    nonnegative(values["dev_every"], "dev_every", owner, integer=True)
    for key in ("alpha", "sigma0", "margin"):
        positive(values[key], key, owner)
    if values["bound"] is not None:
        positive(values["bound"], "bound", owner)
    one_of(values["loss"], "loss", owner, LOSSES)
    one_of(values["pooling"], "pooling", owner, ("text", "all"))


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode (dropout off) and give every module its own flag back after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in flags:
            m.training = training


def _to(split: EncodedSplit, device: torch.device) -> EncodedSplit:
    return EncodedSplit(*(t.to(device) for t in (split.input_ids, split.attention_mask, split.score_pos, split.labels)))
