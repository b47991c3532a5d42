"""Bandits over a finite grid of solver parameters (e.g. SOR's ω), one system per round.

Non-contextual: :class:`~.exp3.Exp3`, :class:`~.tsallis_inf.TsallisINF` (½-Tsallis-INF),
:class:`~.igw.IGW` (inverse-gap weighting on arm means). Contextual (``ask(context=c)``):
:class:`~.contextual.ChebCB` (Chebyshev regression + inverse-gap weighting) and
:class:`~.contextual.TsallisINFCB` (one Tsallis-INF per context bin). Losses are costs
(iterations or seconds); see :mod:`.base` for the shared conventions.
"""
