"""Merge workloads built locally: a base model, experts fine-tuned from it, disjoint splits.

``digits_workload``: scikit-learn's ``load_digits`` (8×8 images, 10 classes), standardised,
stratified 60/20/20 train / fitness (validation) / test. A small MLP "base" is trained on
15% of the training set with Gaussian input noise (weak but covering every class); each
expert is that base fine-tuned only on one digit group, so it forgets the other classes
and no source is good at the whole task — the setting of ALGORITHMS.md §2's pilot. The
experts are trained once per configuration and cached on disk as safetensors.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bbopt.merge.fitness import Task
from bbopt.problems.digits import digits_splits
from bbopt.seeding import as_seed_sequence, child_seed, int_seed, torch_generator

#: bump when a builder's training changes, so stale caches are not reused
CACHE_VERSION = 1
DIGIT_GROUPS = ((0, 1, 2), (3, 4, 5), (6, 7, 8, 9))


@dataclass
class Workload:
    """What a MergeProblem needs: ``model`` (the base, loaded), expert state dicts, tasks.

    ``expert_data[k]``: expert k's own training tasks (for Fisher merging).
    """

    model: nn.Module
    experts: list[dict[str, torch.Tensor]]
    expert_names: list[str]
    fitness: list[Task]
    test: list[Task]
    expert_data: list[list[Task]] = field(default_factory=list)
    exclude: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)


class DigitsMLP(nn.Module):
    """64 → h → (h → h) × depth → 10 with ReLU. Reroutable: ``embed``, ``layers``, ``head``."""

    def __init__(self, hidden: int = 96, depth: int = 2, generator: torch.Generator | None = None):
        super().__init__()
        self.inp = nn.Linear(64, hidden)
        self.hidden = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(depth)])
        self.head_layer = nn.Linear(hidden, 10)
        if generator is not None:  # PyTorch's default init, drawn from our generator
            with torch.no_grad():
                for m in self.modules():
                    if isinstance(m, nn.Linear):
                        bound = 1.0 / m.in_features ** 0.5
                        m.weight.uniform_(-bound, bound, generator=generator)
                        m.bias.uniform_(-bound, bound, generator=generator)

    @property
    def layers(self) -> nn.ModuleList:
        return self.hidden

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return torch.relu(self.inp(x)), None

    def run_layer(self, i: int, h: torch.Tensor, ctx: Any) -> torch.Tensor:
        return torch.relu(self.hidden[i](h))

    def head(self, h: torch.Tensor, ctx: Any) -> torch.Tensor:
        return self.head_layer(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, ctx = self.embed(x)
        for i in range(len(self.hidden)):
            h = self.run_layer(i, h, ctx)
        return self.head(h, ctx)


def digits_workload(seed: int = 0, cache_dir: str | os.PathLike | None = None, hidden: int = 96, depth: int = 2,
                    groups: Sequence[Sequence[int]] = DIGIT_GROUPS, base_fraction: float = 0.15,
                    base_epochs: int = 15, expert_epochs: int = 20, lr: float = 1e-3, noise: float = 1.0) -> Workload:
    """The digits merge workload for ``seed`` (split, base and experts all derive from it)."""
    groups = [tuple(int(c) for c in g) for g in groups]
    if not groups or any(not g or min(g) < 0 or max(g) > 9 for g in groups):
        raise ValueError(f"digits: groups must be non-empty lists of digits 0-9, got {groups}")
    if not 0 < base_fraction <= 1:
        raise ValueError(f"digits: base_fraction must be in (0, 1], got {base_fraction}")
    config = {"kind": "digits", "v": CACHE_VERSION, "seed": int(seed), "hidden": hidden, "depth": depth,
              "groups": groups, "base_fraction": base_fraction, "base_epochs": base_epochs,
              "expert_epochs": expert_epochs, "lr": lr, "noise": noise}
    seq = as_seed_sequence(seed)
    (xtr, ytr), (xva, yva), (xte, yte) = _digits_splits(int_seed(child_seed(seq, 0)))
    xs = [(xtr[np.isin(ytr, g)], ytr[np.isin(ytr, g)]) for g in groups]

    def build() -> dict[str, dict[str, torch.Tensor]]:
        model = DigitsMLP(hidden, depth, torch_generator(child_seed(seq, 1)))
        gen = torch_generator(child_seed(seq, 2))
        n_base = max(10, int(round(base_fraction * len(ytr))))
        _train(model, xtr[:n_base], ytr[:n_base], base_epochs, lr, gen, noise=noise)
        out = {"base": {k: v.clone() for k, v in model.state_dict().items()}}
        for k, (x, y) in enumerate(xs):
            expert = DigitsMLP(hidden, depth)
            expert.load_state_dict(out["base"])
            _train(expert, x, y, expert_epochs, lr, torch_generator(child_seed(seq, 3, k)))
            out[f"expert{k}"] = expert.state_dict()
        return out

    states = cached_states(config, cache_dir, build)
    model = DigitsMLP(hidden, depth)
    model.load_state_dict(states["base"])
    names = ["digits" + "".join(map(str, g)) for g in groups]
    return Workload(
        model=model.eval(), experts=[states[f"expert{k}"] for k in range(len(groups))], expert_names=names,
        fitness=[Task("digits", xva, yva)], test=[Task("digits", xte, yte)],
        expert_data=[[Task(n, x, y)] for n, (x, y) in zip(names, xs)], meta={"config": config})


def _digits_splits(random_state: int) -> tuple:
    """Standardised, shuffled, stratified 60/20/20 splits as float32 / int64 tensors."""
    return digits_splits(random_state % 2**32, train=0.6, val=0.5, val_seed=(random_state + 1) % 2**32,
                         scaling="standard")


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, gen: torch.Generator,
           batch_size: int = 32, noise: float = 0.0) -> None:
    """Adam on cross-entropy, minibatches shuffled (and input noise drawn) from ``gen``."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for a in range(0, len(y), batch_size):
            idx = perm[a:a + batch_size]
            xb = x[idx]
            if noise:
                xb = xb + noise * torch.randn(xb.shape, generator=gen)
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()


def cache_folder(config: dict, cache_dir: str | os.PathLike | None) -> Path:
    """``<cache_dir or ~/.cache/bbopt>/merge/<kind>-<hash of config>/``."""
    root = Path(cache_dir) if cache_dir is not None else Path.home() / ".cache" / "bbopt"
    key = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    return root / "merge" / f"{config['kind']}-{key}"


def build_folder(folder: Path, fill: Callable[[Path], None]) -> None:
    """``fill`` a temporary sibling folder, then rename it to ``folder`` (a reader never sees
    a half-built cache; if another process finished first, its copy is kept)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        fill(tmp)
        try:
            tmp.rename(folder)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def cached_states(config: dict, cache_dir: str | os.PathLike | None,
                  build: Callable[[], dict[str, dict[str, torch.Tensor]]]) -> dict[str, dict[str, torch.Tensor]]:
    """Named state dicts for ``config``: loaded from ``cache_dir`` or built, then saved there.

    The folder (:func:`cache_folder`) has one safetensors file per state and ``config.json``.
    """
    from safetensors.torch import load_file, save_file

    folder = cache_folder(config, cache_dir)
    if not (folder / "config.json").exists():
        states = build()

        def fill(tmp: Path) -> None:
            for name, state in states.items():
                save_file({k: v.detach().contiguous() for k, v in state.items()}, tmp / f"{name}.safetensors")
            (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))

        build_folder(folder, fill)
    return {p.stem: load_file(p) for p in sorted(folder.glob("*.safetensors"))}
