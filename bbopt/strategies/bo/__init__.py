"""Bayesian optimisation on Box spaces: RDUCB (random-decomposition additive GP-UCB),
full-dimensional GP-UCB and TuRBO-1, sharing one GP implementation (scipy/numpy).

Modules: ``decomposition`` (random forests), ``kernels`` and ``likelihood`` (RBF-ARD
components per clique, marginal-likelihood fit), ``additive_gp`` (shared Cholesky,
component posteriors), ``message_passing`` (exact min-sum over trees, zooming grids),
``acquisition`` (additive LCB and its continuous polish), and the strategies
``rducb``, ``gp_ucb``, ``turbo`` on the common base ``_base``.
"""
