"""Diagonal Fisher information of a model on data (for Fisher merging).

Matena & Raffel, "Merging Models with Fisher-Weighted Averaging" (NeurIPS 2022):
F_j = E_x E_{y ~ p(·|x)} [(∂ log p(y|x) / ∂θ_j)²], estimated from per-example gradients
(batch size 1, as in MaTS's code). ``empirical=True`` uses the true label instead of a
sampled one (the "empirical Fisher"); sampled labels come from a seeded generator.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from bbopt.merge.fitness import Task
from bbopt.seeding import as_seed_sequence, torch_generator


def diagonal_fisher(module: torch.nn.Module, state: Mapping[str, torch.Tensor], tasks: Sequence[Task],
                    n_examples: int = 256, empirical: bool = True, seed: Any = 0) -> dict[str, torch.Tensor]:
    """Diagonal Fisher of ``module`` loaded with ``state``, over the first ``n_examples`` of
    each task; one tensor per floating-point entry of ``state`` (zeros where no gradient)."""
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
        raise ValueError(f"fisher: n_examples must be a positive integer, got {n_examples!r}")
    model = copy.deepcopy(module)
    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.clone()  # detach from any shared (flat) storage
    model.load_state_dict(state, strict=False)
    model.train(False)
    params = {n: p for n, p in model.named_parameters()}
    for p in params.values():
        p.requires_grad_(True)
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    gen = None if empirical else torch_generator(as_seed_sequence(seed))
    count = 0
    for task in tasks:
        sub = task.head(min(n_examples, len(task)))
        for i in range(len(sub)):
            one = _row(sub, i)
            logits = (model(one.inputs) if one.forward is None else one.forward(model, one.inputs)).float()
            logp = torch.log_softmax(logits, dim=-1)[0]
            y = one.labels[0] if empirical else torch.multinomial(logp.exp().detach(), 1, generator=gen)[0]
            model.zero_grad(set_to_none=True)
            logp[y].backward()
            for n, p in params.items():
                if p.grad is not None:
                    fisher[n] += p.grad.detach() ** 2
            count += 1
    out = {n: f / max(count, 1) for n, f in fisher.items()}
    return {n: (out[n] if n in out else torch.zeros_like(t, dtype=torch.float32))
            for n, t in state.items() if torch.is_floating_point(t)}


def _row(task: Task, i: int) -> Task:
    """Example ``i`` of ``task`` as a one-example task."""
    def pick(v: Any) -> Any:
        return {k: pick(x) for k, x in v.items()} if isinstance(v, dict) else v[i:i + 1]

    return Task(task.name, pick(task.inputs), task.labels[i:i + 1], task.forward)
