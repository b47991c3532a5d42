"""Contextual bandits for solver parameters ("Learning to Relax", Khodak et al., ICLR 2024).

The context c is one number known before the solve (the diagonal shift of A + cI, the
diffusion coefficient of a heat-equation step). **ChebCB** models each arm's cost as a
degree-5 Chebyshev series in c and samples by inverse-gap weighting (:mod:`.igw` states
the update); it approaches the instance-optimal ω. **Tsallis-INF-CB** splits
``context_range`` into ``n_bins`` equal bins and runs an independent ½-Tsallis-INF in each
(nearest bin centre), a weaker baseline. Contexts outside ``context_range`` are clipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bbopt.options import integer, positive
from bbopt.seeding import SeedLike
from bbopt.spaces import Space
from bbopt.strategies.bandit.base import context_range as _range
from bbopt.strategies.bandit.igw import IGW
from bbopt.strategies.bandit.tsallis_inf import TsallisINF


class ChebCB(IGW):
    """Inverse-gap weighting on per-arm Chebyshev regressions of cost on the context."""

    contextual = True
    owner = "chebcb"

    def __init__(self, space: Space, seed: SeedLike = None, context_range: Any = None, degree: int = 5,
                 cost_offset: float = 1.0):
        super().__init__(space, seed, cost_offset)
        self._setup(integer(degree, "degree", self.owner, minimum=0), _range(context_range, self.owner))


class TsallisINFCB(TsallisINF):
    """One ½-Tsallis-INF per context bin (bins of equal width over ``context_range``)."""

    contextual = True
    owner = "tsallis-inf-cb"

    def __init__(self, space: Space, seed: SeedLike = None, context_range: Any = None, n_bins: int = 5,
                 cost_offset: float = 1.0):
        super().__init__(space, seed, cost_offset)
        lo, hi = _range(context_range, self.owner)
        n_bins = positive(n_bins, "n_bins", self.owner, integer=True)
        self._init_bins(n_bins)
        self.centres = lo + (hi - lo) * (np.arange(n_bins) + 0.5) / n_bins

    def _bin(self, context: float) -> int:
        return int(np.argmin(np.abs(self.centres - context)))
