"""A plain MeZO step as a user writes it outside bbopt: the reference Z1 and Z2 compare against.

MeZO's own loop (princeton-nlp/MeZO, ``zo_step`` / ``zo_update``), in place: the global RNG
re-seeded with the step's seed before each of the four passes over the parameters (+εz, −2εz,
+εz back, then the update −lr·g·z), z drawn one parameter tensor at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


@torch.no_grad()
def plain_mezo_step(model: torch.nn.Module, params: Sequence[torch.Tensor], loss: Callable[[Any, Any], torch.Tensor],
                    batch: Any, lr: float, eps: float, seed: int) -> float:
    """One MeZO step on ``params`` (in place); returns the projected gradient g."""

    def perturb(scale: float) -> None:
        torch.manual_seed(seed)
        for p in params:
            z = torch.normal(mean=0.0, std=1.0, size=p.shape, dtype=p.dtype, device=p.device)
            p.add_(z, alpha=scale * eps)

    perturb(1.0)
    plus = float(loss(model, batch).mean())
    perturb(-2.0)
    minus = float(loss(model, batch).mean())
    perturb(1.0)
    g = (plus - minus) / (2 * eps)
    torch.manual_seed(seed)
    for p in params:
        z = torch.normal(mean=0.0, std=1.0, size=p.shape, dtype=p.dtype, device=p.device)
        p.add_(z, alpha=-lr * g)
    return g
