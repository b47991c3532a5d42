"""Strategies: one module per method family, each an :class:`bbopt.optimizer.Optimizer`."""
