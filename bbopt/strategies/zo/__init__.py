"""Zeroth-order and forward-only gradient estimators over torch parameters (``ModelParams``).

``mezo`` (ZO-SGD family), ``cge`` (DeepZero coordinate-wise), ``forward-gradient`` (jvp) and
``likelihood-ratio`` (ULR): each is an ask/tell optimizer whose candidates are perturbation
specs evaluated by :class:`~bbopt.problems.TorchProblem`; one candidate is one forward (FE).
"""
