"""Real workloads for the ZO estimators: train an MLP or a small CNN from scratch on load_digits.

Data: ``sklearn.datasets.load_digits`` (1,797 8×8 images, ships with scikit-learn), pixels
scaled to [0, 1], a stratified split of 1,100 train / 247 validation / 450 test images
(:func:`~bbopt.problems.digits.digits_splits`; the split depends only on ``split_seed``). Training batches are reshuffled every epoch from
``seed``; weights are initialised from ``seed`` with torch's default scheme through a
dedicated generator. Loss: per-example cross-entropy (``loss="error"``: the 0-1 error,
non-differentiable); eval sets ``val`` / ``test`` with the metric ``accuracy``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bbopt.params import Selector
from bbopt.problems.digits import digits_splits
from bbopt.problems.torch_data import ShuffledBatches
from bbopt.problems.torch_train import TorchProblem


def cross_entropy(model: torch.nn.Module, batch: tuple) -> torch.Tensor:
    """Per-example cross-entropy ``(B,)``."""
    return F.cross_entropy(model(batch[0]), batch[1], reduction="none")


def error(model: torch.nn.Module, batch: tuple) -> torch.Tensor:
    """Per-example 0-1 error ``(B,)``: a non-differentiable training objective."""
    return (model(batch[0]).argmax(-1) != batch[1]).float()


def accuracy(model: torch.nn.Module, batch: tuple) -> torch.Tensor:
    return (model(batch[0]).argmax(-1) == batch[1]).float()


LOSSES = {"ce": cross_entropy, "error": error}


def mlp(hidden: int = 64, depth: int = 1) -> torch.nn.Sequential:
    """64 → hidden (×depth, ReLU) → 10; the default is the 4,810-parameter 64-64-10 MLP."""
    layers: list[torch.nn.Module] = []
    width = 64
    for _ in range(depth):
        layers += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
        width = hidden
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))


def cnn(channels: int = 8) -> torch.nn.Sequential:
    """8×8 image → conv3 (c) → pool → conv3 (2c) → pool → linear 10 (1,898 parameters at c = 8)."""
    c = channels
    return torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, 8, 8)),
        torch.nn.Conv2d(1, c, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(c, 2 * c, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(2 * c * 4, 10))


@torch.no_grad()
def init_weights(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """torch's default Linear/Conv initialisation, drawn from a dedicated generator."""
    gen = torch.Generator().manual_seed(int(seed))
    for mod in model.modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
            torch.nn.init.kaiming_uniform_(mod.weight, a=math.sqrt(5), generator=gen)
            fan_in = mod.weight[0].numel()
            if mod.bias is not None:
                mod.bias.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=gen)
    return model


def build(model: torch.nn.Module, seed: int, split_seed: int, batch_size: int, loss: str, name: str,
          **options) -> TorchProblem:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    data = digits_splits(split_seed)
    train = ShuffledBatches(list(data.train), batch_size, seed=seed)
    return TorchProblem(init_weights(model, seed), LOSSES[loss], train, name=name,
                        eval_sets={"val": [data.val], "test": [data.test]},
                        metrics={"accuracy": accuracy}, **options)


def digits_mlp(seed: int = 0, hidden: int = 64, depth: int = 1, batch_size: int = 64, split_seed: int = 0,
               loss: str = "ce", select: Selector = None, device: str = "cpu", mode: str = "auto",
               jvp: str = "func", feature_reuse: bool = True, dev_every: int = 1000) -> TorchProblem:
    """An MLP trained from scratch on load_digits (see the module docstring)."""
    with torch.random.fork_rng(devices=[]):  # the modules' own default init must not move the global RNG
        model = mlp(hidden, depth)
    return build(model, seed, split_seed, batch_size, loss, f"digits-mlp-{hidden}x{depth}",
                 select=select, device=device, mode=mode, jvp=jvp, feature_reuse=feature_reuse, dev_every=dev_every)


def digits_cnn(seed: int = 0, channels: int = 8, batch_size: int = 64, split_seed: int = 0, loss: str = "ce",
               select: Selector = None, device: str = "cpu", mode: str = "auto", jvp: str = "func",
               feature_reuse: bool = True, dev_every: int = 1000) -> TorchProblem:
    """A small CNN trained from scratch on load_digits (see the module docstring)."""
    with torch.random.fork_rng(devices=[]):
        model = cnn(channels)
    return build(model, seed, split_seed, batch_size, loss, f"digits-cnn-{channels}",
                 select=select, device=device, mode=mode, jvp=jvp, feature_reuse=feature_reuse, dev_every=dev_every)
