"""Zeroth-order and forward-only gradient estimators over torch parameters (``ModelParams``).

``mezo`` (ZO-SGD family), ``cge`` (DeepZero coordinate-wise), ``forward-gradient`` (jvp) and
``likelihood-ratio`` (ULR): each is an ask/tell optimizer whose candidates are perturbation
specs evaluated by :class:`~bbopt.problems.TorchProblem`; one candidate is one forward (FE)::

    from bbopt import minimize
    from bbopt.problems import TorchProblem

    problem = TorchProblem(model, loss, batches)      # loss(model, batch) -> (B,) or a scalar
    minimize(problem, "mezo", 30_000, seed=0, options={"lr": 3e-3, "rule": "sgd"})
    problem.save("model.safetensors")                 # the model was trained in place

Shared pieces: ``base`` (steps, guards, state; how a new estimator plugs in), ``rules`` (sgd /
sign / window momentum / torch.optim), ``trajectory`` (the (seed, g, lr) log and its replay),
``grasp`` (ZO-GraSP layer densities). An lr / ε grid over runs: :mod:`bbopt.tuning`.
"""
